"""nerdctl's JSON (``ps --format json`` rows, ``container inspect``) to CRI messages.

Pure functions, so what each CRI field is made of can be read in one place.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from pycri.api import api_pb2 as cri
from pycri.core.engine import CONTAINER_KIND, KIND_LABEL, SANDBOX_KIND, EngineLabels, exit_reason
from pycri.core.identity import process_groups
from pycri_shims.nerdctl import labels as labelcodec
from pycri_shims.nerdctl.specedit import STRICT_GROUPS
from pycri_shims.nerdctl.timestamps import to_ns

if TYPE_CHECKING:
    from pycri_shims.nerdctl.events import EngineEvent

__all__ = [
    "START_ERROR",
    "container_event",
    "container_from_row",
    "container_status",
    "decoded",
    "kind_of",
    "pod_from_row",
    "raw_labels",
    "sandbox_status",
    "spec_user",
]

#: nerdctl records why ``start`` failed in this label (the container stays "Created")
ERROR_LABEL = "nerdctl/error"
#: what containerd's CRI reports for a container that failed to start
START_ERROR = ("StartError", 128)


def raw_labels(data: dict[str, Any]) -> dict[str, str]:
    """The engine labels of a ps row or an inspect document, as stored."""
    raw = data.get("Labels")
    if raw is None:
        raw = (data.get("Config") or {}).get("Labels")
    return dict(raw or {})


def decoded(data: dict[str, Any]) -> EngineLabels:
    """The pycri labels of a ps row or an inspect document (pieces joined)."""
    return labelcodec.decode(raw_labels(data))


def _row_state(row: dict[str, Any]) -> cri.ContainerState:
    status = str(row.get("Status", ""))
    if status.startswith(("Up", "Paused", "Restarting")):
        return cri.CONTAINER_RUNNING
    if status.startswith("Exited"):
        return cri.CONTAINER_EXITED
    if status.startswith("Created"):
        failed = ERROR_LABEL in raw_labels(row)
        return cri.CONTAINER_EXITED if failed else cri.CONTAINER_CREATED
    return cri.CONTAINER_UNKNOWN


def pod_from_row(row: dict[str, Any]) -> cri.PodSandbox:
    """A ``ps`` row of a pause container as a PodSandbox."""
    meta = decoded(row)
    running = _row_state(row) == cri.CONTAINER_RUNNING
    return cri.PodSandbox(
        id=row["ID"],
        metadata=meta.pod_metadata(),
        state=cri.SANDBOX_READY if running else cri.SANDBOX_NOTREADY,
        created_at=to_ns(row.get("CreatedAt")),
        labels=meta.labels,
        annotations=meta.annotations,
        runtime_handler=meta.extra.get("runtime-handler", ""),
    )


def _image_spec(meta: EngineLabels, fallback: str) -> cri.ImageSpec:
    return cri.ImageSpec(
        image=meta.extra.get("image", fallback),
        user_specified_image=meta.extra.get("image", fallback),
    )


def container_from_row(row: dict[str, Any]) -> cri.Container:
    """A ``ps`` row of an app container as a Container."""
    meta = decoded(row)
    image_ref = meta.extra.get("image-ref", "")
    return cri.Container(
        id=row["ID"],
        pod_sandbox_id=meta.sandbox_id,
        metadata=meta.container_metadata(),
        image=_image_spec(meta, str(row.get("Image", ""))),
        image_ref=image_ref,
        image_id=image_ref,
        state=_row_state(row),
        created_at=to_ns(row.get("CreatedAt")),
        labels=meta.labels,
        annotations=meta.annotations,
    )


def _namespaces(meta: EngineLabels) -> cri.Namespace:
    modes = json.loads(meta.extra.get("namespaces", "{}"))
    return cri.Namespace(
        options=cri.NamespaceOption(
            network=modes.get("network", cri.POD),
            pid=modes.get("pid", cri.POD),
            ipc=modes.get("ipc", cri.POD),
        )
    )


def sandbox_status(data: dict[str, Any]) -> cri.PodSandboxStatus:
    """``container inspect`` of a pause container as a PodSandboxStatus."""
    meta = decoded(data)
    state = data.get("State") or {}
    running = bool(state.get("Running"))
    namespaces = _namespaces(meta)
    ip = ""
    if running and namespaces.options.network != cri.NODE:
        ip = (data.get("NetworkSettings") or {}).get("IPAddress") or ""
    return cri.PodSandboxStatus(
        id=data["Id"],
        metadata=meta.pod_metadata(),
        state=cri.SANDBOX_READY if running else cri.SANDBOX_NOTREADY,
        created_at=to_ns(data.get("Created")),
        network=cri.PodSandboxNetworkStatus(ip=ip),
        linux=cri.LinuxPodSandboxStatus(namespaces=namespaces),
        labels=meta.labels,
        annotations=meta.annotations,
        runtime_handler=meta.extra.get("runtime-handler", ""),
    )


def _mounts(meta: EngineLabels) -> list[cri.Mount]:
    return [
        json_format.ParseDict(m, cri.Mount()) for m in json.loads(meta.extra.get("mounts", "[]"))
    ]


def container_status(
    data: dict[str, Any], started_ns: int, oom_killed: bool
) -> cri.ContainerStatus:
    """``container inspect`` of an app container as a ContainerStatus.

    ``started_ns`` and ``oom_killed`` come from runc's state and the cgroup:
    nerdctl 1.7's inspect has neither.
    """
    meta = decoded(data)
    state = data.get("State") or {}
    engine_state = str(state.get("Status") or "")
    error = str(state.get("Error") or "")
    exit_code = int(state.get("ExitCode") or 0)
    finished = to_ns(state.get("FinishedAt"))
    reason = ""
    if engine_state in ("running", "paused", "restarting"):
        cri_state = cri.CONTAINER_RUNNING
    elif engine_state in ("exited", "dead", "stopped"):
        cri_state = cri.CONTAINER_EXITED
        reason = exit_reason(exit_code, oom_killed)
    elif engine_state in ("", "created") and ERROR_LABEL in raw_labels(data):
        cri_state = cri.CONTAINER_EXITED
        reason, exit_code = START_ERROR
        error = error or raw_labels(data)[ERROR_LABEL]
    elif engine_state in ("", "created"):
        cri_state = cri.CONTAINER_CREATED
    else:
        cri_state = cri.CONTAINER_UNKNOWN
    image_ref = meta.extra.get("image-ref", "")
    return cri.ContainerStatus(
        id=data["Id"],
        metadata=meta.container_metadata(),
        state=cri_state,
        created_at=to_ns(data.get("Created")),
        started_at=started_ns if cri_state != cri.CONTAINER_CREATED else 0,
        finished_at=finished if cri_state == cri.CONTAINER_EXITED else 0,
        exit_code=exit_code if cri_state == cri.CONTAINER_EXITED else 0,
        image=_image_spec(meta, str(data.get("Image", ""))),
        image_ref=image_ref,
        image_id=image_ref,
        reason=reason,
        message=error,
        labels=meta.labels,
        annotations=meta.annotations,
        mounts=_mounts(meta),
        log_path=meta.log_path,
    )


def spec_user(native: dict[str, Any]) -> cri.LinuxContainerUser | None:
    """The process user of containerd's stored spec (``inspect --mode native``), as
    runc gets it: a Strict container's groups are those the runc wrapper writes."""
    user = ((native.get("Spec") or {}).get("process") or {}).get("user")
    if not user:
        return None
    gid = int(user.get("gid") or 0)
    groups = [int(g) for g in user.get("additionalGids") or []]
    strict = decoded(native).extra.get(STRICT_GROUPS)
    if strict is not None:
        groups = process_groups(cri.Strict, gid, json.loads(strict))
    return cri.LinuxContainerUser(
        uid=int(user.get("uid") or 0), gid=gid, supplemental_groups=groups
    )


def kind_of(data: dict[str, Any]) -> str:
    """``podsandbox``, ``container``, or "" for containers pycri did not make."""
    kind = raw_labels(data).get(KIND_LABEL, "")
    return kind if kind in (SANDBOX_KIND, CONTAINER_KIND) else ""


#: containerd's event topics as the CRI's container events
_EVENT_TYPES = {
    "/containers/create": cri.CONTAINER_CREATED_EVENT,
    "/tasks/start": cri.CONTAINER_STARTED_EVENT,
    "/tasks/exit": cri.CONTAINER_STOPPED_EVENT,
    "/containers/delete": cri.CONTAINER_DELETED_EVENT,
}


def container_event(event: EngineEvent) -> cri.ContainerEventResponse | None:
    """containerd's event of a container as a CRI container event (None: not one)."""
    kind = _EVENT_TYPES.get(event.topic)
    if kind is None or (event.topic == "/tasks/exit" and not event.init):
        return None  # an exec's exit is not the container's
    return cri.ContainerEventResponse(
        container_id=event.container_id,
        container_event_type=kind,
        created_at=to_ns(event.timestamp),
    )
