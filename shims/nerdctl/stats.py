"""Container and pod stats from cgroup files and /proc, not from ``nerdctl stats``.

``nerdctl stats --no-stream`` samples every container and prints rounded,
human-readable figures; the cgroup files give the exact counters the CRI
asks for (cumulative CPU nanoseconds, working set bytes) for a file read
each. ``usage_nano_cores`` (a rate) is left to the kubelet, which computes
it from two samples.

ListContainerStats and ListPodSandboxStats take the containers' labels
from the container view (one ``ps`` while it is not fresh), a single
ContainerStats from the container's kept inspect (lookup.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.core.engine import CONTAINER_KIND, KIND_LABEL, SANDBOX_ID_LABEL, SANDBOX_KIND
from pycri.errors import NotFoundError
from pycri_shims.nerdctl import convert
from pycri_shims.nerdctl.host import Cgroups, RuncState, net_dev
from pycri_shims.nerdctl.lookup import Lookup

__all__ = ["NerdctlStats", "container_stats", "pod_stats"]


def _set(field: Any, value: int | None) -> None:
    if value is not None:
        field.value = value


def container_stats(cgroups: Cgroups, data: dict[str, Any]) -> cri.ContainerStats:
    """Stats of the container described by ``data`` (a ps row or an inspect document)."""
    container_id = data.get("ID") or data["Id"]
    meta = convert.decoded(data)
    usage = cgroups.usage(container_id, meta.extra.get("cgroup-parent", ""))
    now = time.time_ns()
    stats = cri.ContainerStats(
        attributes=cri.ContainerAttributes(
            id=container_id,
            metadata=meta.container_metadata(),
            labels=meta.labels,
            annotations=meta.annotations,
        ),
        cpu=cri.CpuUsage(timestamp=now),
        memory=cri.MemoryUsage(timestamp=now),
    )
    _set(stats.cpu.usage_core_nano_seconds, usage.cpu_ns)
    _set(stats.memory.usage_bytes, usage.memory_usage)
    _set(stats.memory.working_set_bytes, usage.working_set)
    _set(stats.memory.rss_bytes, usage.rss)
    _set(stats.memory.page_faults, usage.page_faults)
    _set(stats.memory.major_page_faults, usage.major_page_faults)
    return stats


def pod_stats(
    cgroups: Cgroups, runc: RuncState | None, pod: dict[str, Any], containers: list[dict[str, Any]]
) -> cri.PodSandboxStats:
    """The pod's containers plus its pause, summed; network counters from the pause's netns."""
    meta = convert.decoded(pod)
    now = time.time_ns()
    children = [container_stats(cgroups, c) for c in containers]
    pause = cgroups.usage(pod["ID"], meta.extra.get("cgroup-parent", ""))
    linux = cri.LinuxPodSandboxStats(
        cpu=cri.CpuUsage(timestamp=now),
        memory=cri.MemoryUsage(timestamp=now),
        containers=children,
    )
    cpu = [pause.cpu_ns, *(c.cpu.usage_core_nano_seconds.value for c in children)]
    memory = [pause.working_set, *(c.memory.working_set_bytes.value for c in children)]
    linux.cpu.usage_core_nano_seconds.value = sum(v or 0 for v in cpu)
    linux.memory.working_set_bytes.value = sum(v or 0 for v in memory)
    counters = net_dev(runc.init_pid) if runc is not None and runc.alive() else None
    if counters is not None:
        rx, rx_errors, tx, tx_errors = counters
        iface = cri.NetworkInterfaceUsage(name="eth0")
        iface.rx_bytes.value, iface.rx_errors.value = rx, rx_errors
        iface.tx_bytes.value, iface.tx_errors.value = tx, tx_errors
        linux.network.CopyFrom(cri.NetworkUsage(timestamp=now, default_interface=iface))
    return cri.PodSandboxStats(
        attributes=cri.PodSandboxAttributes(
            id=pod["ID"],
            metadata=meta.pod_metadata(),
            labels=meta.labels,
            annotations=meta.annotations,
        ),
        linux=linux,
    )


class NerdctlStats:
    """ContainerStats, ListContainerStats, PodSandboxStats and ListPodSandboxStats."""

    def __init__(self, lookup: Lookup, cgroups: Cgroups) -> None:
        self.lookup = lookup
        self.cgroups = cgroups

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        """CPU and memory from the containers' cgroups; the labels from the view."""
        if len(container_ids) == 1:
            try:
                data = self.lookup.inspect(container_ids[0], CONTAINER_KIND)
            except NotFoundError:
                return []  # removed since it was listed: left out, as a ps would leave it
            return [container_stats(self.cgroups, data)]
        wanted = set(container_ids)
        rows = self.lookup.pycri_rows()
        return [container_stats(self.cgroups, row) for row in rows if row["ID"] in wanted]

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        """Sums over each pod's containers; network from the pause's netns."""
        wanted = set(pod_ids)
        pods: dict[str, dict[str, Any]] = {}
        members: dict[str, list[dict[str, Any]]] = {pod_id: [] for pod_id in wanted}
        for row in self.lookup.pycri_rows():
            labels = row.get("Labels") or {}
            if labels.get(KIND_LABEL) == SANDBOX_KIND and row["ID"] in wanted:
                pods[row["ID"]] = row
            elif labels.get(SANDBOX_ID_LABEL) in wanted:
                members[labels[SANDBOX_ID_LABEL]].append(row)
        return [
            pod_stats(self.cgroups, self.lookup.runc(p), pods[p], members[p])
            for p in pod_ids
            if p in pods
        ]
