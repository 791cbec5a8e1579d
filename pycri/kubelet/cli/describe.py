"""``describe pod``: kubectl's layout, from the spec, the computed status and recorded events."""

from __future__ import annotations

from collections.abc import Mapping

from pycri.kubelet.cli.apiobject import qos_class
from pycri.kubelet.cli.tables import render
from pycri.kubelet.cli.timefmt import apimachinery_human_duration, rfc1123z
from pycri.kubelet.model.spec import Container, ExecProbe
from pycri.kubelet.sync.kubelet import PodInfo
from pycri.kubelet.sync.status import ContainerState, ContainerStatus

__all__ = ["describe_pod"]


def _map(values: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(values.items())] or ["<none>"]


def _field(lines: list[str], indent: int, name: str, value: str, width: int) -> None:
    lines.append(f"{' ' * indent}{name + ':':<{width}}{value}")


def _probe(probe: ExecProbe) -> str:
    return (
        f"exec [{' '.join(probe.command)}] delay={probe.initial_delay_seconds}s "
        f"timeout={probe.timeout_seconds}s period={probe.period_seconds}s "
        f"#success={probe.success_threshold} #failure={probe.failure_threshold}"
    )


def _state_lines(lines: list[str], title: str, state: ContainerState | None) -> None:
    if state is None:
        return
    _field(lines, 4, title, state.state.capitalize(), 16)
    if state.reason:
        _field(lines, 6, "Reason", state.reason, 14)
    if state.message:
        _field(lines, 6, "Message", state.message, 14)
    if state.state == "terminated":
        _field(lines, 6, "Exit Code", str(state.exit_code), 14)
    if state.started_at:
        _field(lines, 6, "Started", rfc1123z(state.started_at), 14)
    if state.state == "terminated":
        _field(lines, 6, "Finished", rfc1123z(state.finished_at), 14)


def _container(
    lines: list[str], spec: Container, status: ContainerStatus | None, runtime: str
) -> None:
    lines.append(f"  {spec.name}:")
    if status is not None and status.container_id:
        _field(lines, 4, "Container ID", f"{runtime}://{status.container_id}", 16)
    _field(lines, 4, "Image", spec.image, 16)
    if status is not None and status.image_id:
        _field(lines, 4, "Image ID", status.image_id, 16)
    ports = ", ".join(f"{p.container_port}/{p.protocol}" for p in spec.ports)
    _field(lines, 4, "Port", ports or "<none>", 16)
    host_ports = ", ".join(f"{p.host_port}/{p.protocol}" for p in spec.ports if p.host_port)
    _field(lines, 4, "Host Port", host_ports or "<none>", 16)
    for title, words in (("Command", spec.command), ("Args", spec.args)):
        if words:
            lines.append(f"    {title}:")
            lines += [f"      {word}" for word in words]
    if status is not None:
        _state_lines(lines, "State", status.state)
        _state_lines(lines, "Last State", status.last_state)
        _field(lines, 4, "Ready", str(status.ready), 16)
        _field(lines, 4, "Restart Count", str(status.restart_count), 16)
    res = spec.resources
    for title, cpu, memory in (
        ("Limits", res.cpu_limit_millis, res.memory_limit_bytes),
        ("Requests", res.cpu_request_millis, res.memory_request_bytes),
    ):
        if cpu is not None or memory is not None:
            lines.append(f"    {title}:")
            if cpu is not None:
                _field(lines, 6, "cpu", f"{cpu}m", 8)
            if memory is not None:
                _field(lines, 6, "memory", str(memory), 8)
    for kind in ("liveness", "readiness", "startup"):
        probe = spec.probe(kind)
        if probe is not None:
            _field(lines, 4, kind.capitalize(), _probe(probe), 16)
    if spec.env:
        lines.append("    Environment:")
        for var in spec.env:
            value = var.value if not var.field_path else f"({var.field_path})"
            lines.append(f"      {var.name}:  {value}")
    else:
        _field(lines, 4, "Environment", "<none>", 16)
    if spec.volume_mounts:
        lines.append("    Mounts:")
        for mount in spec.volume_mounts:
            mode = "ro" if mount.read_only else "rw"
            sub = f',path="{mount.sub_path}"' if mount.sub_path else ""
            lines.append(f"      {mount.mount_path} from {mount.name} ({mode}{sub})")
    else:
        _field(lines, 4, "Mounts", "<none>", 16)


def describe_pod(info: PodInfo, *, runtime: str, node: str, host_ip: str, now: float) -> str:
    pod, status = info.pod, info.status
    lines: list[str] = []
    width = 18
    _field(lines, 0, "Name", info.name, width)
    _field(lines, 0, "Namespace", info.namespace, width)
    _field(lines, 0, "Priority", "0", width)
    _field(lines, 0, "Node", f"{node}/{host_ip}", width)
    _field(lines, 0, "Start Time", rfc1123z(status.start_time), width)
    labels = _map(pod.labels if pod else {})
    _field(lines, 0, "Labels", labels[0], width)
    lines += [" " * width + label for label in labels[1:]]
    annotations = _map(pod.annotations if pod else {})
    _field(lines, 0, "Annotations", annotations[0], width)
    lines += [" " * width + a for a in annotations[1:]]
    if pod is not None and pod.source:
        _field(lines, 0, "Manifest", pod.source, width)
    _field(lines, 0, "Status", "Terminating" if info.terminating else status.phase, width)
    _field(lines, 0, "IP", status.pod_ip, width)
    if status.pod_ip:
        lines += ["IPs:", f"  IP:  {status.pod_ip}"]
    if pod is not None and pod.owner:
        _field(lines, 0, "Controlled By", f"Deployment/{pod.owner}", width)
    by_name = {s.name: s for s in (*status.init_container_statuses, *status.container_statuses)}
    if pod is not None:
        for title, group in (
            ("Init Containers", pod.spec.init_containers),
            ("Containers", pod.spec.containers),
        ):
            if group:
                lines.append(f"{title}:")
                for spec in group:
                    _container(lines, spec, by_name.get(spec.name), runtime)
    lines.append("Conditions:")
    rows = [["  Type", "Status"]] + [
        [f"  {c.type}", "True" if c.status else "False"] for c in status.conditions
    ]
    lines += render(rows).splitlines()
    lines.append("Volumes:")
    volumes = pod.spec.volumes if pod else ()
    if not volumes:
        lines.append("  <none>")
    for volume in volumes:
        lines.append(f"  {volume.name}:")
        if volume.kind == "hostPath":
            _field(lines, 4, "Type", "HostPath (bare host directory volume)", 14)
            _field(lines, 4, "Path", volume.host_path, 14)
            _field(lines, 4, "HostPathType", volume.host_path_type, 14)
        else:
            _field(
                lines,
                4,
                "Type",
                "EmptyDir (a temporary directory that shares a pod's lifetime)",
                14,
            )
            _field(lines, 4, "Medium", "", 14)
            _field(lines, 4, "SizeLimit", "<unset>", 14)
    _field(lines, 0, "QoS Class", qos_class(pod), 17)
    _field(lines, 0, "Node-Selectors", "<none>", 17)
    _field(lines, 0, "Tolerations", "<none>", 17)
    events = info.state.events if info.state else []
    if not events:
        lines.append("Events:            <none>")
    else:
        lines.append("Events:")
        rows = [["  Type", "Reason", "Age", "From", "Message"]]
        rows.append(["  ----", "------", "----", "----", "-------"])
        for event in events:
            age = apimachinery_human_duration(now - event.time)
            if event.count > 1:
                over = apimachinery_human_duration(now - event.first_time)
                age = f"{age} (x{event.count} over {over})"
            rows.append([f"  {event.type}", event.reason, age, "kubelet", event.message])
        lines += render(rows).splitlines()
    return "\n".join(lines)
