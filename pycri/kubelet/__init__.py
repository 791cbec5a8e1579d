"""pycri.kubelet: run Kubernetes Pod manifests through any CRI endpoint and keep them alive.

    from pycri.client import CRIClient
    from pycri.kubelet import Kubelet

    with CRIClient("unix:///run/containerd/containerd.sock") as client:
        kubelet = Kubelet(client, manifest_dir="manifests", root_dir="state")
        kubelet.apply(open("pod.yaml").read())
        kubelet.sync_once()
        print(kubelet.pod_status("web").phase)

Three layers, imported one way only: :mod:`pycri.kubelet.cli` (the command
line, ``pycri-kubelet``) uses :mod:`pycri.kubelet.sync` (the engine), which
uses :mod:`pycri.kubelet.model` (Pods and manifests). This package re-exports
the Python API. docs/kubelet.md describes the API, the command line, the
layout and where the kubelet keeps things.
"""

import logging

from pycri.kubelet.model.manifest import (
    Manifest,
    ManifestError,
    ManifestObject,
    load_documents,
    parse_documents,
    parse_manifest,
)
from pycri.kubelet.model.spec import Container, Deployment, ExecProbe, Pod, PodSpec, Volume
from pycri.kubelet.sync.clock import Clock, ManualClock, SystemClock
from pycri.kubelet.sync.kubelet import Kubelet, PodInfo, SyncReport
from pycri.kubelet.sync.status import Condition, ContainerState, ContainerStatus, PodStatus

__all__ = [
    "Clock",
    "Condition",
    "Container",
    "ContainerState",
    "ContainerStatus",
    "Deployment",
    "ExecProbe",
    "Kubelet",
    "Manifest",
    "ManifestError",
    "ManifestObject",
    "ManualClock",
    "Pod",
    "PodInfo",
    "PodSpec",
    "PodStatus",
    "SyncReport",
    "SystemClock",
    "Volume",
    "load_documents",
    "parse_documents",
    "parse_manifest",
]

# the daemon configures logging; a library and its one-shot commands stay quiet
logging.getLogger(__name__).addHandler(logging.NullHandler())
