"""CRI metrics on Docker: figures from the kernel, found through Docker.

One ``GET /containers/json?size=1`` lists every running pause and app
container of pycri's with its name, image and writable layer size; one
inspect per running container (in parallel: Docker has no batch call)
gives its pid, from which :mod:`pycri.core.cgroups` reads the cgroup
files and, for a pause, the pod's network counters. Docker's own stats
endpoint is not used: it answers at its next once-a-second tick and has
neither threads, file descriptors nor the cgroup's limits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.core import metrics
from pycri.core.cgroups import Cgroup, filesystem, net_dev, process_counts
from pycri.core.engine import CONTAINER_KIND, KIND_LABEL, METADATA_LABEL, SANDBOX_KIND
from pycri.errors import NotFoundError
from pycri_shims.docker.connection import DockerConnection
from pycri_shims.docker.decode import container_metadata, docker_time_ns, labels_of, pod_metadata

__all__ = ["DockerMetrics"]

_Entry = Mapping[str, Any]


def _name(entry: _Entry) -> str:
    names = entry.get("Names") or [""]
    return str(names[0]).lstrip("/")


def _usage(pid: int) -> metrics.Usage | None:
    """The figures of the cgroup ``pid`` runs in (None when it has exited)."""
    cgroup = Cgroup.of_pid(pid) if pid > 0 else None
    if cgroup is None:
        return None
    usage = cgroup.usage()
    usage.file_descriptors, usage.sockets = process_counts(cgroup.procs())
    return usage


class DockerMetrics:
    """The metrics calls of one docker shim; ``workers`` inspect calls at once."""

    def __init__(
        self, connection: DockerConnection, root_dir: Callable[[], str], workers: int = 8
    ) -> None:
        self._conn = connection
        self._root_dir = root_dir
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pycri-metrics")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _running(self) -> list[_Entry]:
        filters = {"label": [KIND_LABEL, METADATA_LABEL], "status": ["running"]}
        with self._conn.errors("listing containers for metrics"):
            entries: list[_Entry] = self._conn.api.containers(size=True, filters=filters)
        return entries

    def _inspect(self, ids: Sequence[str]) -> dict[str, _Entry]:
        def one(container_id: str) -> _Entry:
            try:
                with self._conn.errors(f"inspecting {container_id[:13]} for metrics"):
                    data: _Entry = self._conn.api.inspect_container(container_id)
            except NotFoundError:
                return {}  # removed since it was listed: left out
            return data

        return dict(zip(ids, self._pool.map(one, ids), strict=True))

    def pod_sandbox_metrics(self) -> list[cri.PodSandboxMetrics]:
        entries = self._running()
        inspected = self._inspect([e["Id"] for e in entries])
        root = self._root_dir()
        pods = [e for e in entries if labels_of(e).kind == SANDBOX_KIND]
        members: dict[str, list[_Entry]] = {}
        for e in entries:
            labels = labels_of(e)
            if labels.kind == CONTAINER_KIND:
                members.setdefault(labels.sandbox_id, []).append(e)
        out = []
        for pod in pods:
            state = (inspected.get(pod["Id"]) or {}).get("State") or {}
            pid = int(state.get("Pid") or 0)
            if pid <= 0:
                continue  # stopped or removed meanwhile
            meta = pod_metadata(labels_of(pod))
            containers = [
                m
                for m in (
                    self._container(c, inspected.get(c["Id"]) or {}, meta, root)
                    for c in members.get(pod["Id"], [])
                )
                if m is not None
            ]
            subject = metrics.Subject(
                container=metrics.POD_CONTAINER_NAME,
                id=pod["Id"],
                image=str(pod.get("Image", "")),
                name=_name(pod),
                namespace=meta.namespace,
                pod=meta.name,
            )
            out.append(
                metrics.pod_sandbox_metrics(
                    subject, containers, usage=_usage(pid), interfaces=net_dev(pid)
                )
            )
        return out

    @staticmethod
    def _container(
        entry: _Entry, data: _Entry, pod: cri.PodSandboxMetadata, root: str
    ) -> cri.ContainerMetrics | None:
        state = data.get("State") or {}
        usage = _usage(int(state.get("Pid") or 0))
        if usage is None:
            return None
        meta = container_metadata(labels_of(entry))
        return metrics.container_metrics(
            metrics.Subject(
                container=meta.name,
                id=entry["Id"],
                image=str(entry.get("Image", "")),
                name=_name(entry),
                namespace=pod.namespace,
                pod=pod.name,
            ),
            usage,
            filesystem=filesystem(root, int(entry.get("SizeRw") or 0)),
            started_ns=docker_time_ns(state.get("StartedAt")),
        )
