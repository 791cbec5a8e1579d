"""Container and pod sandbox stats from Docker.

One ``GET /containers/json?size=1`` answers the attributes and writable
layer size of every container asked for (measured: 9 ms instead of 6 ms
without sizes for 100 containers). CPU and memory need one
``stats?one-shot=1`` call per running container; Docker has no batch call.

``one-shot`` skips the second sample that otherwise costs a second per
container, but dockerd still answers each call at the next tick of its
stats collector (every second), and one tick serves every call waiting for
it. So the calls are made all at once, by a pool as wide as the list
(``workers``, default 256): measured for 100 running containers, 1.2 s with
128 workers against 13 s with 8 and 100 s one by one. CPU is the cumulative
counter only (the kubelet derives the rate itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.core.engine import CONTAINER_KIND, SANDBOX_KIND
from pycri.errors import NotFoundError
from pycri_shims.docker.connection import DockerConnection
from pycri_shims.docker.decode import (
    container_metadata,
    docker_time_ns,
    kind_filter,
    labels_of,
    pod_metadata,
)

__all__ = ["DockerStats"]

_Stats = Mapping[str, Any]


def _u64(value: Any) -> cri.UInt64Value:
    return cri.UInt64Value(value=max(0, int(value or 0)))


def _cpu(raw: _Stats, now: int) -> cri.CpuUsage:
    usage = raw.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0)
    return cri.CpuUsage(timestamp=now, usage_core_nano_seconds=_u64(usage))


def _memory(raw: _Stats, now: int) -> cri.MemoryUsage:
    memory = raw.get("memory_stats", {})
    detail = memory.get("stats", {})
    usage = int(memory.get("usage", 0) or 0)
    # cgroup v1 reports total_* for the hierarchy; v2 has the plain names
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return cri.MemoryUsage(
        timestamp=now,
        working_set_bytes=_u64(usage - int(inactive or 0)),
        usage_bytes=_u64(usage),
        rss_bytes=_u64(detail.get("total_rss", detail.get("anon", 0))),
        page_faults=_u64(detail.get("total_pgfault", detail.get("pgfault", 0))),
        major_page_faults=_u64(detail.get("total_pgmajfault", detail.get("pgmajfault", 0))),
    )


def _stamp(raw: _Stats) -> int:
    return docker_time_ns(raw.get("read")) or time.time_ns()


class DockerStats:
    """Stats calls of one shim; up to ``workers`` stats requests wait for a tick at once."""

    def __init__(
        self, connection: DockerConnection, root_dir: Callable[[], str], workers: int = 256
    ) -> None:
        self._conn = connection
        self._root_dir = root_dir
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pycri-stats")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _list(self, kind: str, ids: Sequence[str], size: bool) -> list[Mapping[str, Any]]:
        filters = kind_filter(kind)
        if len(ids) == 1:
            filters["id"] = [ids[0]]
        with self._conn.errors(f"listing {kind}s for stats"):
            entries: list[Mapping[str, Any]] = self._conn.api.containers(
                all=True, size=size, filters=filters
            )
        wanted = set(ids)
        return [e for e in entries if e["Id"] in wanted]

    def _raw_stats(self, ids: Sequence[str]) -> dict[str, _Stats]:
        """Docker's one-shot stats of these (running) containers, fetched in parallel."""

        def one(container_id: str) -> _Stats:
            try:
                with self._conn.errors(f"stats of {container_id[:13]}"):
                    stats: _Stats = self._conn.api.stats(container_id, stream=False, one_shot=True)
            except NotFoundError:
                return {}  # removed since it was listed
            except ValueError:  # requests' JSONDecodeError
                return {}  # stopped or removed during the call: Docker answered an empty body
            return stats

        return dict(zip(ids, self._pool.map(one, ids), strict=True))

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        entries = self._list(CONTAINER_KIND, container_ids, size=True)
        running = [e["Id"] for e in entries if e.get("State") == "running"]
        raw = self._raw_stats(running)
        return [self._container(entry, raw.get(entry["Id"], {})) for entry in entries]

    def _container(self, entry: Mapping[str, Any], raw: _Stats) -> cri.ContainerStats:
        labels = labels_of(entry)
        now = _stamp(raw)
        stats = cri.ContainerStats(
            attributes=cri.ContainerAttributes(
                id=entry["Id"],
                metadata=container_metadata(labels),
                labels=labels.labels,
                annotations=labels.annotations,
            ),
            writable_layer=cri.FilesystemUsage(
                timestamp=now,
                fs_id=cri.FilesystemIdentifier(mountpoint=self._root_dir()),
                used_bytes=_u64(entry.get("SizeRw", 0)),
            ),
        )
        if raw:
            stats.cpu.CopyFrom(_cpu(raw, now))
            stats.memory.CopyFrom(_memory(raw, now))
        return stats

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        sandboxes = self._list(SANDBOX_KIND, pod_ids, size=False)
        with self._conn.errors("listing containers for pod stats"):
            containers: list[Mapping[str, Any]] = self._conn.api.containers(
                all=True, size=True, filters=kind_filter(CONTAINER_KIND)
            )
        wanted = {s["Id"] for s in sandboxes}
        members = [c for c in containers if labels_of(c).sandbox_id in wanted]
        running = [e["Id"] for e in [*sandboxes, *members] if e.get("State") == "running"]
        raw = self._raw_stats(running)
        by_pod: dict[str, list[cri.ContainerStats]] = {}
        for entry in members:
            by_pod.setdefault(labels_of(entry).sandbox_id, []).append(
                self._container(entry, raw.get(entry["Id"], {}))
            )
        return [self._pod(s, raw.get(s["Id"], {}), by_pod.get(s["Id"], []), raw) for s in sandboxes]

    @staticmethod
    def _pod(
        entry: Mapping[str, Any],
        raw: _Stats,
        containers: list[cri.ContainerStats],
        all_raw: Mapping[str, _Stats],
    ) -> cri.PodSandboxStats:
        labels = labels_of(entry)
        now = _stamp(raw)
        # the pod's usage is the sum over its containers and its pause container
        pod_raw = [raw, *(all_raw.get(c.attributes.id, {}) for c in containers)]
        cpu = sum(_cpu(r, now).usage_core_nano_seconds.value for r in pod_raw if r)
        memories = [_memory(r, now) for r in pod_raw if r]
        processes = sum(int(r.get("pids_stats", {}).get("current", 0) or 0) for r in pod_raw if r)
        linux = cri.LinuxPodSandboxStats(
            cpu=cri.CpuUsage(timestamp=now, usage_core_nano_seconds=_u64(cpu)),
            memory=cri.MemoryUsage(
                timestamp=now,
                working_set_bytes=_u64(sum(m.working_set_bytes.value for m in memories)),
                usage_bytes=_u64(sum(m.usage_bytes.value for m in memories)),
                rss_bytes=_u64(sum(m.rss_bytes.value for m in memories)),
            ),
            process=cri.ProcessUsage(timestamp=now, process_count=_u64(processes)),
            containers=containers,
        )
        networks = raw.get("networks") or {}
        if networks:  # the pause container holds the pod's network namespace
            interfaces = [
                cri.NetworkInterfaceUsage(
                    name=name,
                    rx_bytes=_u64(n.get("rx_bytes")),
                    rx_errors=_u64(n.get("rx_errors")),
                    tx_bytes=_u64(n.get("tx_bytes")),
                    tx_errors=_u64(n.get("tx_errors")),
                )
                for name, n in sorted(networks.items())
            ]
            default = next((i for i in interfaces if i.name == "eth0"), interfaces[0])
            linux.network.CopyFrom(
                cri.NetworkUsage(timestamp=now, default_interface=default, interfaces=interfaces)
            )
        return cri.PodSandboxStats(
            attributes=cri.PodSandboxAttributes(
                id=entry["Id"],
                metadata=pod_metadata(labels),
                labels=labels.labels,
                annotations=labels.annotations,
            ),
            linux=linux,
        )
