"""The cAdvisor metric descriptors that ListMetricDescriptors answers, once for every shim.

The names, help texts and label keys are cAdvisor's, so that a kubelet with
``PodAndContainerStatsFromCRI`` serves the /metrics/cadvisor its users know.
:mod:`pycri.core.metrics` builds the series; this module only describes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycri.api import api_pb2 as cri

__all__ = [
    "BASE_LABEL_KEYS",
    "DESCRIPTORS",
    "POD_CONTAINER_NAME",
    "Descriptor",
    "by_name",
    "descriptors",
]

#: cAdvisor's labels on every container series, as the kubelet exports them
BASE_LABEL_KEYS = ("container", "id", "image", "name", "namespace", "pod")
#: the ``container`` label of the pod's own series (the pause container), as in cAdvisor
POD_CONTAINER_NAME = "POD"

COUNTER = cri.COUNTER
GAUGE = cri.GAUGE


@dataclass(frozen=True)
class Descriptor:
    """One series: its name, help, kind, and label keys beyond :data:`BASE_LABEL_KEYS`."""

    name: str
    help: str
    kind: cri.MetricType
    extra: tuple[str, ...] = ()


def _d(name: str, help: str, kind: cri.MetricType, *extra: str) -> Descriptor:
    return Descriptor(name, help, kind, extra)


_NET = ("interface",)
_FS = ("device",)
_DESCS = [
    # cpu
    _d(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        COUNTER,
        "cpu",
    ),
    _d(
        "container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", COUNTER
    ),
    _d(
        "container_cpu_system_seconds_total",
        "Cumulative system cpu time consumed in seconds.",
        COUNTER,
    ),
    _d(
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        COUNTER,
    ),
    _d(
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        COUNTER,
    ),
    _d(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        COUNTER,
    ),
    # memory
    _d("container_memory_cache", "Number of bytes of page cache memory.", GAUGE),
    _d("container_memory_rss", "Size of RSS in bytes.", GAUGE),
    _d("container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", GAUGE),
    _d("container_memory_mapped_file", "Size of memory mapped files in bytes.", GAUGE),
    _d("container_memory_swap", "Container swap usage in bytes.", GAUGE),
    _d("container_memory_failcnt", "Number of memory usage hits limits", COUNTER),
    _d(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        GAUGE,
    ),
    _d("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", GAUGE),
    _d("container_memory_working_set_bytes", "Current working set in bytes.", GAUGE),
    _d(
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        COUNTER,
        "failure_type",
        "scope",
    ),
    _d(
        "container_oom_events_total",
        "Count of out of memory events observed for the container",
        COUNTER,
    ),
    # processes
    _d("container_processes", "Number of processes running inside the container.", GAUGE),
    _d("container_threads", "Number of threads running inside the container", GAUGE),
    _d(
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        GAUGE,
    ),
    _d("container_file_descriptors", "Number of open file descriptors for the container.", GAUGE),
    _d("container_sockets", "Number of open sockets for the container.", GAUGE),
    # filesystem and block I/O
    _d(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        GAUGE,
        *_FS,
    ),
    _d(
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        GAUGE,
        *_FS,
    ),
    _d("container_fs_inodes_total", "Number of Inodes", GAUGE, *_FS),
    _d("container_fs_inodes_free", "Number of available Inodes", GAUGE, *_FS),
    _d("container_fs_reads_bytes_total", "Cumulative count of bytes read", COUNTER, *_FS),
    _d("container_fs_writes_bytes_total", "Cumulative count of bytes written", COUNTER, *_FS),
    _d("container_fs_reads_total", "Cumulative count of reads completed", COUNTER, *_FS),
    _d("container_fs_writes_total", "Cumulative count of writes completed", COUNTER, *_FS),
    _d(
        "container_blkio_device_usage_total",
        "Blkio Device bytes usage",
        COUNTER,
        "device",
        "major",
        "minor",
        "operation",
    ),
    # network (the pod's network namespace)
    _d(
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        COUNTER,
        *_NET,
    ),
    _d(
        "container_network_receive_packets_total",
        "Cumulative count of packets received",
        COUNTER,
        *_NET,
    ),
    _d(
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        COUNTER,
        *_NET,
    ),
    _d(
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        COUNTER,
        *_NET,
    ),
    _d(
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        COUNTER,
        *_NET,
    ),
    _d(
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
        COUNTER,
        *_NET,
    ),
    _d(
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        COUNTER,
        *_NET,
    ),
    _d(
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        COUNTER,
        *_NET,
    ),
    # pressure stall information (cgroup v2 or the v1 host's unified hierarchy)
    _d(
        "container_pressure_cpu_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to CPU pressure stalls.",
        COUNTER,
    ),
    _d(
        "container_pressure_cpu_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to CPU congestion.",
        COUNTER,
    ),
    _d(
        "container_pressure_memory_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to memory pressure stalls.",
        COUNTER,
    ),
    _d(
        "container_pressure_memory_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to memory "
        "congestion.",
        COUNTER,
    ),
    _d(
        "container_pressure_io_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to IO pressure stalls.",
        COUNTER,
    ),
    _d(
        "container_pressure_io_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to IO congestion.",
        COUNTER,
    ),
    # the container's configuration
    _d("container_spec_cpu_period", "CPU period of the container.", GAUGE),
    _d("container_spec_cpu_quota", "CPU quota of the container.", GAUGE),
    _d("container_spec_cpu_shares", "CPU share of the container.", GAUGE),
    _d("container_spec_memory_limit_bytes", "Memory limit for the container.", GAUGE),
    _d(
        "container_spec_memory_reservation_limit_bytes",
        "Memory reservation limit for the container.",
        GAUGE,
    ),
    _d("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", GAUGE),
    # lifetime
    _d(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        GAUGE,
    ),
    _d("container_last_seen", "Last time a container was seen by the exporter", GAUGE),
]
#: descriptor by series name, for the builder's checks
by_name: dict[str, Descriptor] = {d.name: d for d in _DESCS}

#: every descriptor, as ListMetricDescriptors answers them
DESCRIPTORS: tuple[cri.MetricDescriptor, ...] = tuple(
    cri.MetricDescriptor(name=d.name, help=d.help, label_keys=[*BASE_LABEL_KEYS, *d.extra])
    for d in _DESCS
)


def descriptors() -> list[cri.MetricDescriptor]:
    """Fresh copies of :data:`DESCRIPTORS` (callers may change them)."""
    out = []
    for d in DESCRIPTORS:
        copy = cri.MetricDescriptor()
        copy.CopyFrom(d)
        out.append(copy)
    return out
