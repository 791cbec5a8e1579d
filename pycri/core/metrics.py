"""The CRI metrics (ListMetricDescriptors, ListPodSandboxMetrics) once for every shim.

The series are cAdvisor's (described in :mod:`pycri.core.metric_descriptors`).
Shims only supply plain figures (:class:`Usage`, :class:`Interface`...);
this module turns them into ``cri.Metric`` entries whose label values line
up with the descriptor's label keys.

Units: the CRI carries every value as a uint64, which the kubelet exports
as it is, so a ``*_seconds*`` metric must be in seconds. They are rounded
up to whole seconds: a container that used any CPU time shows it, rates
over time are unaffected, and the error stays under a second as with
truncation. Counters stay monotonic either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pycri.api import api_pb2 as cri
from pycri.core.metric_descriptors import (
    BASE_LABEL_KEYS,
    DESCRIPTORS,
    POD_CONTAINER_NAME,
    by_name,
    descriptors,
)

__all__ = [
    "BASE_LABEL_KEYS",
    "DESCRIPTORS",
    "POD_CONTAINER_NAME",
    "DeviceIO",
    "Filesystem",
    "Interface",
    "Subject",
    "Usage",
    "container_metrics",
    "descriptors",
    "names",
    "pod_sandbox_metrics",
]

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Subject:
    """Who a series is about: the values of :data:`BASE_LABEL_KEYS`."""

    container: str  #: the CRI container name, or POD_CONTAINER_NAME for the sandbox
    id: str
    image: str
    name: str  #: the engine's name of the container
    namespace: str  #: the pod's namespace
    pod: str  #: the pod's name

    def values(self) -> list[str]:
        return [self.container, self.id, self.image, self.name, self.namespace, self.pod]


@dataclass(frozen=True)
class DeviceIO:
    """Block I/O of one device (``major:minor``), cumulative."""

    major: int
    minor: int
    read_bytes: int = 0
    write_bytes: int = 0
    reads: int = 0
    writes: int = 0

    @property
    def device(self) -> str:
        return f"{self.major}:{self.minor}"


@dataclass(frozen=True)
class Filesystem:
    """The filesystem that holds a container's writable layer."""

    device: str
    usage_bytes: int
    limit_bytes: int
    inodes_total: int
    inodes_free: int


@dataclass(frozen=True)
class Interface:
    """Counters of one network interface (as /proc/net/dev has them)."""

    name: str
    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


@dataclass
class Usage:
    """One container's figures; None where the engine or kernel does not say.

    Times are in nanoseconds, sizes in bytes. A None figure leaves its
    series out rather than reporting a made-up zero.
    """

    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    cfs_periods: int | None = None
    cfs_throttled_periods: int | None = None
    cfs_throttled_ns: int | None = None
    memory_usage: int | None = None
    memory_max_usage: int | None = None
    memory_working_set: int | None = None
    memory_cache: int | None = None
    memory_rss: int | None = None
    memory_kernel: int | None = None
    memory_mapped_file: int | None = None
    memory_swap: int | None = None
    memory_failcnt: int | None = None
    pgfault: int | None = None
    pgmajfault: int | None = None
    oom_events: int | None = None
    processes: int | None = None
    threads: int | None = None
    threads_max: int | None = None
    file_descriptors: int | None = None
    sockets: int | None = None
    #: (waiting, stalled) ns per resource: "cpu", "memory", "io"
    pressure: dict[str, tuple[int, int]] = field(default_factory=dict)
    io: list[DeviceIO] = field(default_factory=list)
    spec_cpu_period: int | None = None
    spec_cpu_quota: int | None = None
    spec_cpu_shares: int | None = None
    spec_memory_limit: int | None = None
    spec_memory_reservation: int | None = None
    spec_memory_swap_limit: int | None = None


def _seconds(ns: int) -> int:
    return math.ceil(max(ns, 0) / _NS_PER_S)


class _Builder:
    def __init__(self, subject: Subject, now: int) -> None:
        self.base = subject.values()
        self.now = now
        self.out: list[cri.Metric] = []

    def add(self, name: str, value: int | None, *extra: str) -> None:
        if value is None:
            return
        desc = by_name[name]
        if len(extra) != len(desc.extra):  # a programming error, never input
            raise ValueError(f"{name} takes {len(desc.extra)} extra label values")
        self.out.append(
            cri.Metric(
                name=name,
                timestamp=self.now,
                metric_type=desc.kind,
                label_values=[*self.base, *extra],
                value=cri.UInt64Value(value=max(int(value), 0)),
            )
        )

    def seconds(self, name: str, ns: int | None, *extra: str) -> None:
        self.add(name, None if ns is None else _seconds(ns), *extra)


def _add_usage(b: _Builder, u: Usage) -> None:
    b.seconds("container_cpu_usage_seconds_total", u.cpu_usage_ns, "total")
    b.seconds("container_cpu_user_seconds_total", u.cpu_user_ns)
    b.seconds("container_cpu_system_seconds_total", u.cpu_system_ns)
    b.add("container_cpu_cfs_periods_total", u.cfs_periods)
    b.add("container_cpu_cfs_throttled_periods_total", u.cfs_throttled_periods)
    b.seconds("container_cpu_cfs_throttled_seconds_total", u.cfs_throttled_ns)
    b.add("container_memory_usage_bytes", u.memory_usage)
    b.add("container_memory_max_usage_bytes", u.memory_max_usage)
    b.add("container_memory_working_set_bytes", u.memory_working_set)
    b.add("container_memory_cache", u.memory_cache)
    b.add("container_memory_rss", u.memory_rss)
    b.add("container_memory_kernel_usage", u.memory_kernel)
    b.add("container_memory_mapped_file", u.memory_mapped_file)
    b.add("container_memory_swap", u.memory_swap)
    b.add("container_memory_failcnt", u.memory_failcnt)
    # cAdvisor's failure types: page faults, minor and major, of the container's own cgroup
    b.add("container_memory_failures_total", u.pgfault, "pgfault", "container")
    b.add("container_memory_failures_total", u.pgmajfault, "pgmajfault", "container")
    b.add("container_oom_events_total", u.oom_events)
    b.add("container_processes", u.processes)
    b.add("container_threads", u.threads)
    b.add("container_threads_max", u.threads_max)
    b.add("container_file_descriptors", u.file_descriptors)
    b.add("container_sockets", u.sockets)
    for resource, (waiting, stalled) in sorted(u.pressure.items()):
        b.seconds(f"container_pressure_{resource}_waiting_seconds_total", waiting)
        b.seconds(f"container_pressure_{resource}_stalled_seconds_total", stalled)
    for dev in u.io:
        b.add("container_fs_reads_bytes_total", dev.read_bytes, dev.device)
        b.add("container_fs_writes_bytes_total", dev.write_bytes, dev.device)
        b.add("container_fs_reads_total", dev.reads, dev.device)
        b.add("container_fs_writes_total", dev.writes, dev.device)
        major, minor = str(dev.major), str(dev.minor)
        for operation, value in (("Read", dev.read_bytes), ("Write", dev.write_bytes)):
            b.add("container_blkio_device_usage_total", value, dev.device, major, minor, operation)
    b.add("container_spec_cpu_period", u.spec_cpu_period)
    b.add("container_spec_cpu_quota", u.spec_cpu_quota)
    b.add("container_spec_cpu_shares", u.spec_cpu_shares)
    b.add("container_spec_memory_limit_bytes", u.spec_memory_limit)
    b.add("container_spec_memory_reservation_limit_bytes", u.spec_memory_reservation)
    b.add("container_spec_memory_swap_limit_bytes", u.spec_memory_swap_limit)


def container_metrics(
    subject: Subject,
    usage: Usage,
    *,
    filesystem: Filesystem | None = None,
    started_ns: int = 0,
    now: int | None = None,
) -> cri.ContainerMetrics:
    """The metrics of one container from its figures."""
    b = _Builder(subject, time.time_ns() if now is None else now)
    _add_usage(b, usage)
    if filesystem is not None:
        fs = filesystem
        b.add("container_fs_usage_bytes", fs.usage_bytes, fs.device)
        b.add("container_fs_limit_bytes", fs.limit_bytes, fs.device)
        b.add("container_fs_inodes_total", fs.inodes_total, fs.device)
        b.add("container_fs_inodes_free", fs.inodes_free, fs.device)
    if started_ns > 0:
        b.add("container_start_time_seconds", started_ns // _NS_PER_S)
    b.add("container_last_seen", b.now // _NS_PER_S)
    return cri.ContainerMetrics(container_id=subject.id, metrics=b.out)


def _network(b: _Builder, interfaces: Sequence[Interface]) -> None:
    for i in interfaces:
        n = i.name
        b.add("container_network_receive_bytes_total", i.rx_bytes, n)
        b.add("container_network_receive_packets_total", i.rx_packets, n)
        b.add("container_network_receive_packets_dropped_total", i.rx_dropped, n)
        b.add("container_network_receive_errors_total", i.rx_errors, n)
        b.add("container_network_transmit_bytes_total", i.tx_bytes, n)
        b.add("container_network_transmit_packets_total", i.tx_packets, n)
        b.add("container_network_transmit_packets_dropped_total", i.tx_dropped, n)
        b.add("container_network_transmit_errors_total", i.tx_errors, n)


def pod_sandbox_metrics(
    subject: Subject,
    containers: Sequence[cri.ContainerMetrics],
    *,
    usage: Usage | None = None,
    interfaces: Sequence[Interface] = (),
    now: int | None = None,
) -> cri.PodSandboxMetrics:
    """A pod's metrics: its network and its pause container's own figures as ``POD``.

    ``subject`` describes the sandbox (its ``container`` label is
    :data:`POD_CONTAINER_NAME` by convention); ``containers`` come from
    :func:`container_metrics`.
    """
    b = _Builder(subject, time.time_ns() if now is None else now)
    if usage is not None:
        _add_usage(b, usage)
    _network(b, interfaces)
    b.add("container_last_seen", b.now // _NS_PER_S)
    return cri.PodSandboxMetrics(
        pod_sandbox_id=subject.id, metrics=b.out, container_metrics=list(containers)
    )


def names(metrics: cri.PodSandboxMetrics) -> Iterator[str]:
    """Every series name in a pod's metrics, its containers' included (for tests and tools)."""
    for m in metrics.metrics:
        yield m.name
    for c in metrics.container_metrics:
        for m in c.metrics:
            yield m.name
