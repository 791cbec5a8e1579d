"""``get`` tables as kubectl prints them: the STATUS column's reason, RESTARTS, AGE."""

from __future__ import annotations

from collections.abc import Sequence

from pycri.kubelet.cli.timefmt import apimachinery_human_duration
from pycri.kubelet.model.spec import Deployment
from pycri.kubelet.sync.kubelet import PodInfo

__all__ = ["deployment_rows", "pod_reason", "pod_rows", "render"]

_MIN_WIDTH, _PADDING = 10, 3  # kubectl's tabwriter.NewWriter(out, 10, 4, 3, ' ', 0)


def render(rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    widths = [
        max(_MIN_WIDTH, *(len(row[i]) + _PADDING for row in rows)) for i in range(len(rows[0]))
    ]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + row[-1])
    return "\n".join(lines)


def pod_reason(info: PodInfo) -> str:
    """kubectl's printPod: the word in the STATUS column."""
    status = info.status
    reason = status.reason or status.phase
    initializing = False
    inits = status.init_container_statuses
    for index, init in enumerate(inits):
        state = init.state
        if state.state == "terminated" and state.exit_code == 0:
            continue
        initializing = True
        if state.state == "terminated":
            reason = f"Init:{state.reason}" if state.reason else f"Init:ExitCode:{state.exit_code}"
        elif state.state == "waiting" and state.reason and state.reason != "PodInitializing":
            reason = f"Init:{state.reason}"
        else:
            reason = f"Init:{index}/{len(inits)}"
        break
    if not initializing:
        has_running = False
        for container in reversed(status.container_statuses):
            state = container.state
            if (state.state == "waiting" and state.reason) or (
                state.state == "terminated" and state.reason
            ):
                reason = state.reason
            elif state.state == "terminated":
                reason = f"ExitCode:{state.exit_code}"
            elif state.state == "running" and container.ready:
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running" if status.ready else "NotReady"
    if info.terminating:
        reason = "Terminating"
    return reason


def _restarts(info: PodInfo, now: float) -> str:
    statuses = info.status.container_statuses
    count = sum(s.restart_count for s in statuses)
    last = max(
        (s.last_state.finished_at for s in statuses if s.last_state is not None),
        default=0.0,
    )
    if count and last:
        return f"{count} ({apimachinery_human_duration(now - last)} ago)"
    return str(count)


def pod_rows(
    pods: Sequence[PodInfo], now: float, *, wide: bool, namespaces: bool, node: str
) -> list[list[str]]:
    header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    if namespaces:
        header.insert(0, "NAMESPACE")
    if wide:
        header += ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    rows = [header]
    for info in pods:
        statuses = info.status.container_statuses
        ready = sum(1 for s in statuses if s.ready)
        total = len(info.pod.spec.containers) if info.pod else len(statuses)
        start = info.status.start_time
        row = [
            info.name,
            f"{ready}/{total}",
            pod_reason(info),
            _restarts(info, now),
            apimachinery_human_duration(now - start) if start else "<unknown>",
        ]
        if namespaces:
            row.insert(0, info.namespace)
        if wide:
            row += [info.status.pod_ip or "<none>", node, "<none>", "<none>"]
        rows.append(row)
    return rows


def deployment_rows(
    deployments: Sequence[Deployment], pods: Sequence[PodInfo], now: float, *, namespaces: bool
) -> list[list[str]]:
    header = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    if namespaces:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for deployment in deployments:
        mine = [
            p
            for p in pods
            if p.pod is not None
            and p.pod.owner == deployment.name
            and p.namespace == deployment.namespace
        ]
        ready = sum(1 for p in mine if p.status.ready)
        starts = [p.status.start_time for p in mine if p.status.start_time]
        row = [
            deployment.name,
            f"{ready}/{deployment.replicas}",
            str(len(mine)),
            str(ready),
            apimachinery_human_duration(now - min(starts)) if starts else "<unknown>",
        ]
        if namespaces:
            row.insert(0, deployment.namespace)
        rows.append(row)
    return rows
