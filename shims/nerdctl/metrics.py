"""CRI metrics on containerd: one ``nerdctl ps`` for the names, files for the figures.

The ``ps`` that pod_sandbox_stats already makes lists every pause and app
container with its labels and image; which are running and their pids
come from runc's state files (no process per container), the figures
from their cgroups (:mod:`pycri.core.cgroups`), the pod's network
counters from the pause's network namespace, and the writable layer from
the overlay upper directory of the container's root (nerdctl's ``ps
--size`` would ask containerd for every snapshot and print rounded sizes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.core import metrics
from pycri.core.cgroups import Cgroup, filesystem, net_dev, overlay_upper_bytes, process_counts
from pycri.core.engine import CONTAINER_KIND, SANDBOX_KIND
from pycri_shims.nerdctl import convert
from pycri_shims.nerdctl.host import RuncState

__all__ = ["pod_sandbox_metrics"]

Row = dict[str, Any]


def _usage(runc: RuncState | None, cgroup_root: str) -> metrics.Usage | None:
    if runc is None or not runc.alive():
        return None
    cgroup = Cgroup.of_pid(runc.init_pid, cgroup_root)
    if cgroup is None:
        return None
    usage = cgroup.usage()
    usage.file_descriptors, usage.sockets = process_counts(cgroup.procs())
    return usage


def _subject(row: Row, container: str, pod: cri.PodSandboxMetadata) -> metrics.Subject:
    meta = convert.decoded(row)
    return metrics.Subject(
        container=container,
        id=row["ID"],
        image=meta.extra.get("image", str(row.get("Image", ""))),
        name=str(row.get("Names", "")),
        namespace=pod.namespace,
        pod=pod.name,
    )


def pod_sandbox_metrics(
    rows: list[Row],
    runc: Callable[[str], RuncState | None],
    cgroup_root: str,
    containerd_root: str,
) -> list[cri.PodSandboxMetrics]:
    """Metrics of the running pods among ``rows`` (a ``ps`` of both kinds)."""
    members: dict[str, list[Row]] = {}
    for row in rows:
        meta = convert.decoded(row)
        if meta.kind == CONTAINER_KIND:
            members.setdefault(meta.sandbox_id, []).append(row)
    out = []
    for row in rows:
        meta = convert.decoded(row)
        if meta.kind != SANDBOX_KIND:
            continue
        state = runc(row["ID"])
        usage = _usage(state, cgroup_root)
        if state is None or usage is None:
            continue  # not running: a stopped pod has no cgroup, no network
        pod = meta.pod_metadata()
        containers = []
        for member in members.get(row["ID"], []):
            member_state = runc(member["ID"])
            member_usage = _usage(member_state, cgroup_root)
            if member_state is None or member_usage is None:
                continue
            layer = overlay_upper_bytes(member_state.init_pid)
            containers.append(
                metrics.container_metrics(
                    _subject(member, convert.decoded(member).container_metadata().name, pod),
                    member_usage,
                    filesystem=(filesystem(containerd_root, layer) if layer is not None else None),
                    started_ns=member_state.started_ns,
                )
            )
        out.append(
            metrics.pod_sandbox_metrics(
                _subject(row, metrics.POD_CONTAINER_NAME, pod),
                containers,
                usage=usage,
                interfaces=net_dev(state.init_pid),
            )
        )
    return out
