"""Docker's container data read back as CRI values (states, times, pycri's labels)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from pycri.api import api_pb2 as cri
from pycri.core.engine import KIND_LABEL, METADATA_LABEL, EngineLabels, decode_labels
from pycri.core.logs import parse_timestamp

__all__ = [
    "CREATED_AT",
    "LOG_DIRECTORY",
    "NAMESPACES",
    "RUNTIME_HANDLER",
    "TTY",
    "USER_IMAGE",
    "container_metadata",
    "container_state",
    "created_at",
    "docker_time_ns",
    "kind_filter",
    "labels_of",
    "pod_metadata",
    "sandbox_state",
]

# keys of pycri's own labels (stored as io.pycri.<key> by pycri.core.engine)
CREATED_AT = "created-at"  #: ns since the epoch, taken when the CRI create call ran
LOG_DIRECTORY = "log-directory"  #: the sandbox's log_directory
RUNTIME_HANDLER = "runtime-handler"
NAMESPACES = "namespace-options"  #: the sandbox's NamespaceOption, as JSON
TTY = "tty"  #: "1" when the container has a terminal (its log is not multiplexed)
USER_IMAGE = "user-image"  #: ImageSpec.user_specified_image

_RUNNING = {"running", "paused", "restarting"}
_EXITED = {"exited", "dead", "removing"}


def kind_filter(kind: str, selector: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Docker list filters for pycri's containers of ``kind`` (others' dockershim ones excluded)."""
    labels = [f"{KIND_LABEL}={kind}", METADATA_LABEL]
    labels += [f"{key}={value}" for key, value in (selector or {}).items()]
    return {"label": labels}


def docker_time_ns(text: str | None) -> int:
    """Docker's RFC 3339 time in ns; 0 for its zero time ("0001-01-01T00:00:00Z")."""
    if not text or text.startswith("0001-"):
        return 0
    try:
        return max(0, parse_timestamp(text))
    except ValueError:
        return 0


def created_at(labels: EngineLabels, docker_created: Any) -> int:
    """Creation time from pycri's label, else Docker's (seconds in lists, RFC 3339 in inspect)."""
    stamp = labels.extra.get(CREATED_AT, "")
    if stamp.isdigit():
        return int(stamp)
    if isinstance(docker_created, int | float):
        return int(docker_created) * 1_000_000_000
    return docker_time_ns(str(docker_created))


def container_state(docker_state: str) -> cri.ContainerState:
    state = docker_state.lower()
    if state in _RUNNING:
        return cri.CONTAINER_RUNNING
    if state == "created":
        return cri.CONTAINER_CREATED
    if state in _EXITED:
        return cri.CONTAINER_EXITED
    return cri.CONTAINER_UNKNOWN


def sandbox_state(docker_state: str) -> cri.PodSandboxState:
    return cri.SANDBOX_READY if docker_state.lower() == "running" else cri.SANDBOX_NOTREADY


@functools.lru_cache(maxsize=8192)
def _pod_metadata(text: str) -> cri.PodSandboxMetadata:
    return json_format.Parse(text or "{}", cri.PodSandboxMetadata())


@functools.lru_cache(maxsize=8192)
def _container_metadata(text: str) -> cri.ContainerMetadata:
    return json_format.Parse(text or "{}", cri.ContainerMetadata())


def pod_metadata(labels: EngineLabels) -> cri.PodSandboxMetadata:
    """The pod's metadata; parsed once per pod (a relist of 330 containers adds up).

    Callers must not modify the result (message constructors copy it).
    """
    return _pod_metadata(labels.metadata_json)


def container_metadata(labels: EngineLabels) -> cri.ContainerMetadata:
    """The container's metadata, parsed once (see :func:`pod_metadata`)."""
    return _container_metadata(labels.metadata_json)


def labels_of(entry: Mapping[str, Any]) -> EngineLabels:
    """pycri's labels of a Docker list entry or inspect result."""
    raw = entry.get("Labels")
    if raw is None:
        raw = (entry.get("Config") or {}).get("Labels")
    return decode_labels(raw or {})
