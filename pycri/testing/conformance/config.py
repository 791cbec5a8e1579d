"""What the conformance suite may assume of a runtime, and the metrics every shim reports."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REQUIRED_METRICS", "ConformanceConfig"]


@dataclass(frozen=True)
class ConformanceConfig:
    #: an image present in the runtime, with busybox's sh, echo, sleep
    image: str = "docker.io/library/busybox:latest"
    #: an image the runtime can pull and the suite removes afterwards; it must not be
    #: ``image`` itself under another name (RemoveImage drops every tag of an image id)
    pull_image: str = "docker.io/library/busybox:1.36"
    #: the shim's sandbox (pause) image, which RunPodSandbox pulls when missing
    sandbox_image: str = "registry.k8s.io/pause:3.9"
    #: whether the suite may remove ``sandbox_image`` (it must be pullable again and
    #: used by nothing else: other runs sharing the engine need theirs)
    sandbox_image_removable: bool = False
    #: seconds to wait for a container to reach a state
    state_timeout: float = 30.0
    #: containers that print a line and exit, each log read the moment it says EXITED
    exit_log_rounds: int = 100
    #: whether containers see the host's real mounts (the fake's see copies of files)
    real_mounts: bool = True
    #: an image whose /etc/group makes uid 1000 a member of group 50000 (critest's);
    #: pulled when missing (and then removed again); "" leaves that check out
    group_image: str = "gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest"


#: what a pod with one running container reports on every shim: critest's expected
#: cAdvisor names, less those that depend on the host (block I/O accounting, pressure
#: stall information) or on the container's configuration (a CPU quota)
REQUIRED_METRICS = frozenset(
    {
        "container_cpu_cfs_periods_total",
        "container_cpu_cfs_throttled_periods_total",
        "container_cpu_cfs_throttled_seconds_total",
        "container_cpu_system_seconds_total",
        "container_cpu_usage_seconds_total",
        "container_cpu_user_seconds_total",
        "container_file_descriptors",
        "container_fs_inodes_free",
        "container_fs_inodes_total",
        "container_fs_limit_bytes",
        "container_fs_usage_bytes",
        "container_last_seen",
        "container_memory_cache",
        "container_memory_failcnt",
        "container_memory_failures_total",
        "container_memory_kernel_usage",
        "container_memory_mapped_file",
        "container_memory_max_usage_bytes",
        "container_memory_rss",
        "container_memory_swap",
        "container_memory_usage_bytes",
        "container_memory_working_set_bytes",
        "container_network_receive_bytes_total",
        "container_network_receive_errors_total",
        "container_network_receive_packets_dropped_total",
        "container_network_receive_packets_total",
        "container_network_transmit_bytes_total",
        "container_network_transmit_errors_total",
        "container_network_transmit_packets_dropped_total",
        "container_network_transmit_packets_total",
        "container_oom_events_total",
        "container_processes",
        "container_sockets",
        "container_spec_cpu_period",
        "container_spec_cpu_shares",
        "container_spec_memory_limit_bytes",
        "container_spec_memory_swap_limit_bytes",
        "container_start_time_seconds",
        "container_threads",
        "container_threads_max",
    }
)
