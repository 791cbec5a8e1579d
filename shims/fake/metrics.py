"""CRI metrics of fake pods: the figures of stats.py, plus plausible simulated ones.

CPU, memory and the writable layer are the same numbers ContainerStats
reports, so the two views agree; counters (CPU, page faults, network)
only grow while the container or pod runs, as on a real kernel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pycri.api import api_pb2 as cri
from pycri.core import metrics
from pycri_shims.fake.state import ContainerRecord, SandboxRecord
from pycri_shims.fake.stats import container_stats, pod_sandbox_stats
from pycri_shims.fake.store import FakeStore

__all__ = ["FakeMetrics", "pod_sandbox_metrics"]

_FS_LIMIT = 64 * 1024**3
_FS_INODES = 4 * 1024**2
_FS_DEVICE = "0:42"  # a tmpfs-like anonymous device
_CFS_PERIOD_US = 100_000
_DEFAULT_SHARES = 1024
_THREADS_MAX = 4096


def _engine_name(kind: str, pod: cri.PodSandboxMetadata, attempt: int) -> str:
    """A dockershim-style name, what the ``name`` label holds on Docker."""
    return f"k8s_{kind}_{pod.name}_{pod.namespace}_{pod.uid}_{attempt}"


def _usage(record: ContainerRecord, now: int) -> metrics.Usage:
    stats = container_stats(record, now)
    running = record.state == cri.CONTAINER_RUNNING
    processes = (1 + len(record.execs)) if running else 0
    cpu = stats.cpu.usage_core_nano_seconds.value
    resources = record.resources or record.config.linux.resources
    return metrics.Usage(
        cpu_usage_ns=cpu,
        cpu_user_ns=cpu * 4 // 5,
        cpu_system_ns=cpu - cpu * 4 // 5,
        cfs_periods=0,
        cfs_throttled_periods=0,
        cfs_throttled_ns=0,
        memory_usage=stats.memory.usage_bytes.value,
        memory_max_usage=stats.memory.usage_bytes.value,
        memory_working_set=stats.memory.working_set_bytes.value,
        memory_cache=stats.memory.usage_bytes.value - stats.memory.rss_bytes.value,
        memory_rss=stats.memory.rss_bytes.value,
        memory_kernel=64 * 1024 if running else 0,
        memory_mapped_file=128 * 1024 if running else 0,
        memory_swap=0,
        memory_failcnt=0,
        pgfault=stats.memory.page_faults.value,
        pgmajfault=0,
        oom_events=1 if record.reason == "OOMKilled" else 0,
        processes=processes,
        threads=processes,
        threads_max=_THREADS_MAX,
        file_descriptors=3 * processes,
        sockets=0,
        spec_cpu_period=resources.cpu_period or _CFS_PERIOD_US,
        spec_cpu_quota=resources.cpu_quota if resources.cpu_quota > 0 else None,
        spec_cpu_shares=resources.cpu_shares or _DEFAULT_SHARES,
        spec_memory_limit=resources.memory_limit_in_bytes,
        spec_memory_reservation=0,
        spec_memory_swap_limit=resources.memory_swap_limit_in_bytes,
    )


def _container(sandbox: SandboxRecord, record: ContainerRecord, now: int) -> cri.ContainerMetrics:
    pod = sandbox.config.metadata
    meta = record.config.metadata
    layer = container_stats(record, now).writable_layer
    return metrics.container_metrics(
        metrics.Subject(
            container=meta.name,
            id=record.id,
            image=record.image_spec.image,
            name=_engine_name(meta.name, pod, meta.attempt),
            namespace=pod.namespace,
            pod=pod.name,
        ),
        _usage(record, now),
        filesystem=metrics.Filesystem(
            device=_FS_DEVICE,
            usage_bytes=layer.used_bytes.value,
            limit_bytes=_FS_LIMIT,
            inodes_total=_FS_INODES,
            inodes_free=_FS_INODES - layer.inodes_used.value,
        ),
        started_ns=record.started_at,
        now=now,
    )


def pod_sandbox_metrics(
    sandbox: SandboxRecord, containers: Sequence[ContainerRecord], pause_image: str, now: int
) -> cri.PodSandboxMetrics:
    pod = sandbox.config.metadata
    network = pod_sandbox_stats(sandbox, containers, now).linux.network.default_interface
    interface = metrics.Interface(
        name=network.name,
        rx_bytes=network.rx_bytes.value,
        rx_packets=network.rx_bytes.value // 96,
        rx_errors=network.rx_errors.value,
        tx_bytes=network.tx_bytes.value,
        tx_packets=network.tx_bytes.value // 64,
        tx_errors=network.tx_errors.value,
    )
    subject = metrics.Subject(
        container=metrics.POD_CONTAINER_NAME,
        id=sandbox.id,
        image=pause_image,
        name=_engine_name(metrics.POD_CONTAINER_NAME, pod, pod.attempt),
        namespace=pod.namespace,
        pod=pod.name,
    )
    return metrics.pod_sandbox_metrics(
        subject,
        [_container(sandbox, c, now) for c in containers],
        interfaces=[interface],
        now=now,
    )


class FakeMetrics:
    """ListPodSandboxMetrics of one fake runtime: every ready pod; ``pause_image`` names it."""

    def __init__(self, store: FakeStore, pause_image: Callable[[], str]) -> None:
        self._store = store
        self._pause_image = pause_image

    def pod_sandbox_metrics(self) -> list[cri.PodSandboxMetrics]:
        now = time.time_ns()
        store = self._store
        with store.lock:
            return [
                pod_sandbox_metrics(sandbox, store.members(sandbox.id), self._pause_image(), now)
                for sandbox in store.sandboxes.values()
                if sandbox.state == cri.SANDBOX_READY
            ]
