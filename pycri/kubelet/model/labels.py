"""Label and annotation keys on runtime objects, and the hashes stored in them.

The runtime is the kubelet's state of record: a pod sandbox and its
containers carry the real kubelet's ``io.kubernetes.*`` keys, so a
restarted kubelet (or ``crictl pods``) finds the pod again, plus a few
``kubelet.pycri.io/*`` keys for what the real kubelet keeps in memory.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "BACKOFF",
    "CONFIG_HASH",
    "CONFIG_SOURCE",
    "CONTAINER_HASH",
    "CONTAINER_NAME",
    "GRACE_PERIOD",
    "INIT",
    "NODE",
    "OWNER",
    "POD_NAME",
    "POD_NAMESPACE",
    "POD_UID",
    "RESTART_COUNT",
    "SANDBOX_HASH",
    "SOURCE",
    "content_hash",
    "derive_uid",
]

# the real kubelet's keys (pkg/kubelet/types/labels.go, kuberuntime/labels.go)
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
GRACE_PERIOD = "io.kubernetes.pod.terminationGracePeriod"
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_HASH = "kubernetes.io/config.hash"

# ours: which kubelet owns the object, and what the real kubelet keeps in memory
NODE = "kubelet.pycri.io/node"
SOURCE = "kubelet.pycri.io/source"
OWNER = "kubelet.pycri.io/owner"
SANDBOX_HASH = "kubelet.pycri.io/sandbox-hash"
INIT = "kubelet.pycri.io/init-container"
#: seconds of crash-loop back-off that apply when this container exits
BACKOFF = "kubelet.pycri.io/crash-backoff"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def content_hash(value: Any, length: int = 8) -> str:
    """A short, stable hash of a JSON-shaped value (the kubelet's container hash idea)."""
    return hashlib.sha256(_canonical(value)).hexdigest()[:length]


def derive_uid(document: Mapping[str, Any], node: str, name: str) -> str:
    """The uid of a pod whose manifest gives none: a hash of the manifest and the node.

    Like the kubelet's static pods, so that a changed file is a new pod and an
    unchanged one keeps its uid across restarts.
    """
    digest = hashlib.sha256(_canonical([document, node, name])).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))
