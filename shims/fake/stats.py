"""Plausible resource usage for fake containers and pods.

Numbers follow from what the fake knows: CPU time grows with running time
(about 1% of a core), memory is a few MiB while running, the writable
layer holds what processes wrote to the in-memory filesystem.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pycri.api import api_pb2 as cri
from pycri_shims.fake.state import ContainerRecord, SandboxRecord
from pycri_shims.fake.store import FakeStore

__all__ = [
    "CONTAINER_FS",
    "IMAGE_FS",
    "FakeStats",
    "container_stats",
    "filesystem_usage",
    "pod_sandbox_stats",
    "writable_layer_bytes",
]

IMAGE_FS = "/var/lib/pycri-fake/images"
CONTAINER_FS = "/var/lib/pycri-fake/containers"
_KIB = 1024
_MIB = 1024 * _KIB
_CPU_SHARE = 100  # 1/100 of a core
_PAUSE_MEMORY = 320 * _KIB


def _u64(value: int) -> cri.UInt64Value:
    return cri.UInt64Value(value=max(value, 0))


def filesystem_usage(mountpoint: str, used: int, inodes: int, now: int) -> cri.FilesystemUsage:
    return cri.FilesystemUsage(
        timestamp=now,
        fs_id=cri.FilesystemIdentifier(mountpoint=mountpoint),
        used_bytes=_u64(used),
        inodes_used=_u64(inodes),
    )


def writable_layer_bytes(record: ContainerRecord) -> tuple[int, int]:
    """(bytes, inodes) of a container's writable layer."""
    files = record.context.fs.user_files()
    return 4 * _KIB + sum(files.values()), 4 + len(files)


def _running_ns(record: ContainerRecord, now: int) -> int:
    if not record.started_at:
        return 0
    return max((record.finished_at or now) - record.started_at, 0)


def _cpu_ns(record: ContainerRecord, now: int) -> int:
    running = _running_ns(record, now)
    # a few ms of start-up, then a steady trickle
    return 2_000_000 + running // _CPU_SHARE if running else 0


def _working_set(record: ContainerRecord) -> int:
    if record.state != cri.CONTAINER_RUNNING:
        return 0
    jitter = int(record.id[:4], 16) % 512 * _KIB
    return 3 * _MIB // 2 + jitter + sum(record.context.fs.user_files().values())


def container_stats(record: ContainerRecord, now: int) -> cri.ContainerStats:
    running = record.state == cri.CONTAINER_RUNNING
    working_set = _working_set(record)
    limit = record.resources.memory_limit_in_bytes if record.resources is not None else 0
    memory = cri.MemoryUsage(
        timestamp=now,
        working_set_bytes=_u64(working_set),
        usage_bytes=_u64(working_set + 256 * _KIB if running else 0),
        rss_bytes=_u64(working_set * 3 // 4),
        page_faults=_u64(600 + _running_ns(record, now) // 10_000_000 if running else 0),
        major_page_faults=_u64(0),
    )
    if limit > 0:
        memory.available_bytes.value = max(limit - working_set, 0)
    used, inodes = writable_layer_bytes(record)
    return cri.ContainerStats(
        attributes=cri.ContainerAttributes(
            id=record.id,
            metadata=record.config.metadata,
            labels=record.config.labels,
            annotations=record.config.annotations,
        ),
        cpu=cri.CpuUsage(
            timestamp=now,
            usage_core_nano_seconds=_u64(_cpu_ns(record, now)),
            usage_nano_cores=_u64(1_000_000_000 // _CPU_SHARE if running else 0),
        ),
        memory=memory,
        writable_layer=filesystem_usage(f"{CONTAINER_FS}/{record.id}", used, inodes, now),
        swap=cri.SwapUsage(timestamp=now, swap_usage_bytes=_u64(0)),
    )


def pod_sandbox_stats(
    sandbox: SandboxRecord, containers: Sequence[ContainerRecord], now: int
) -> cri.PodSandboxStats:
    ready = sandbox.state == cri.SANDBOX_READY
    per_container = [container_stats(c, now) for c in containers]
    uptime_s = max(((sandbox.stopped_at or now) - sandbox.created_at) // 1_000_000_000, 0)
    pause_cpu = uptime_s * 100_000  # the pause process barely runs
    cpu_total = pause_cpu + sum(s.cpu.usage_core_nano_seconds.value for s in per_container)
    nano_cores = sum(s.cpu.usage_nano_cores.value for s in per_container)
    memory_total = (_PAUSE_MEMORY if ready else 0) + sum(
        s.memory.working_set_bytes.value for s in per_container
    )
    running = sum(1 for c in containers if c.state == cri.CONTAINER_RUNNING)
    # a trickle of traffic (ARP, DNS...) so that counters move
    interface = cri.NetworkInterfaceUsage(
        name="eth0",
        rx_bytes=_u64(1_200 + uptime_s * 96),
        rx_errors=_u64(0),
        tx_bytes=_u64(800 + uptime_s * 64),
        tx_errors=_u64(0),
    )
    return cri.PodSandboxStats(
        attributes=cri.PodSandboxAttributes(
            id=sandbox.id,
            metadata=sandbox.config.metadata,
            labels=sandbox.config.labels,
            annotations=sandbox.config.annotations,
        ),
        linux=cri.LinuxPodSandboxStats(
            cpu=cri.CpuUsage(
                timestamp=now,
                usage_core_nano_seconds=_u64(cpu_total),
                usage_nano_cores=_u64(nano_cores + (100_000 if ready else 0)),
            ),
            memory=cri.MemoryUsage(
                timestamp=now,
                working_set_bytes=_u64(memory_total),
                usage_bytes=_u64(memory_total),
                rss_bytes=_u64(memory_total * 3 // 4),
            ),
            network=cri.NetworkUsage(
                timestamp=now,
                default_interface=interface,
                interfaces=[interface],
            ),
            process=cri.ProcessUsage(
                timestamp=now, process_count=_u64(running + (1 if ready else 0))
            ),
            containers=per_container,
        ),
    )


class FakeStats:
    """ContainerStats and PodSandboxStats (and their lists) of one fake runtime."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        now = time.time_ns()
        store = self._store
        with store.lock:
            return [
                container_stats(store.containers[cid], now)
                for cid in container_ids
                if cid in store.containers
            ]

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        now = time.time_ns()
        store = self._store
        with store.lock:
            return [
                pod_sandbox_stats(store.sandboxes[pod_id], store.members(pod_id), now)
                for pod_id in pod_ids
                if pod_id in store.sandboxes
            ]
