"""Rules shared by shims that map the CRI onto a container engine (Docker, containerd).

The dockershim way: a pod sandbox is a pause container, every container's
name is derived from its identity (``engine_names``), and labels carry that
identity and what else the engine cannot store, so the engine itself is the
only record and a restarted server loses nothing. Label keys are
dockershim's where it had one, so ``docker ps --filter
label=io.kubernetes.docker.type`` finds pycri's containers too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf import json_format

from pycri.api import api_pb2 as cri
from pycri.errors import InvalidArgumentError

__all__ = [
    "ANNOTATION_PREFIX",
    "CONTAINER_KIND",
    "KIND_LABEL",
    "LOG_PATH_LABEL",
    "SANDBOX_ID_LABEL",
    "SANDBOX_KIND",
    "EngineLabels",
    "container_log_path",
    "decode_labels",
    "encode_labels",
    "exit_reason",
]

KIND_LABEL = "io.kubernetes.docker.type"
SANDBOX_KIND = "podsandbox"
CONTAINER_KIND = "container"
SANDBOX_ID_LABEL = "io.kubernetes.sandbox.id"
LOG_PATH_LABEL = "io.kubernetes.container.logpath"
METADATA_LABEL = "io.pycri.metadata"
ANNOTATION_PREFIX = "annotation."
#: prefix of pycri's own labels beyond the ones above (``io.pycri.<name>``)
PYCRI_PREFIX = "io.pycri."
_INTERNAL = (KIND_LABEL, SANDBOX_ID_LABEL, LOG_PATH_LABEL)


def container_log_path(log_directory: str, log_path: str) -> str:
    """Where the CRI log of a container goes ('' when either part is missing)."""
    if not log_directory or not log_path:
        return ""
    return f"{log_directory.rstrip('/')}/{log_path}"


@dataclass
class EngineLabels:
    """What pycri keeps in an engine container's labels."""

    kind: str
    metadata_json: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    sandbox_id: str = ""
    log_path: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # io.pycri.<key> -> value

    def pod_metadata(self) -> cri.PodSandboxMetadata:
        return json_format.Parse(self.metadata_json or "{}", cri.PodSandboxMetadata())

    def container_metadata(self) -> cri.ContainerMetadata:
        return json_format.Parse(self.metadata_json or "{}", cri.ContainerMetadata())


def _metadata_json(meta: cri.PodSandboxMetadata | cri.ContainerMetadata) -> str:
    return json.dumps(json_format.MessageToDict(meta), sort_keys=True, separators=(",", ":"))


def encode_labels(
    kind: str,
    metadata: cri.PodSandboxMetadata | cri.ContainerMetadata,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    *,
    sandbox_id: str = "",
    log_path: str = "",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The engine labels for a sandbox or container."""
    for key in labels:
        if key in _INTERNAL or key == METADATA_LABEL or key.startswith(PYCRI_PREFIX):
            raise InvalidArgumentError(f"label {key!r} is reserved by pycri")
    out = dict(labels)
    out.update({ANNOTATION_PREFIX + k: v for k, v in annotations.items()})
    out[KIND_LABEL] = kind
    out[METADATA_LABEL] = _metadata_json(metadata)
    if sandbox_id:
        out[SANDBOX_ID_LABEL] = sandbox_id
    if log_path:
        out[LOG_PATH_LABEL] = log_path
    for key, value in (extra or {}).items():
        out[PYCRI_PREFIX + key] = value
    return out


def decode_labels(engine_labels: Mapping[str, str] | None) -> EngineLabels:
    """Split engine labels back into CRI labels, annotations and pycri's own."""
    engine_labels = engine_labels or {}
    decoded = EngineLabels(
        kind=engine_labels.get(KIND_LABEL, ""),
        metadata_json=engine_labels.get(METADATA_LABEL, ""),
        sandbox_id=engine_labels.get(SANDBOX_ID_LABEL, ""),
        log_path=engine_labels.get(LOG_PATH_LABEL, ""),
    )
    for key, value in engine_labels.items():
        if key in _INTERNAL or key == METADATA_LABEL:
            continue
        if key.startswith(ANNOTATION_PREFIX):
            decoded.annotations[key.removeprefix(ANNOTATION_PREFIX)] = value
        elif key.startswith(PYCRI_PREFIX):
            decoded.extra[key.removeprefix(PYCRI_PREFIX)] = value
        else:
            decoded.labels[key] = value
    return decoded


def exit_reason(exit_code: int, oom_killed: bool) -> str:
    """The CRI reason of an exited container, as the kubelet expects it."""
    if oom_killed:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"
