"""Where the kubelet keeps things on the node.

``<root>/pods/<uid>/`` holds a pod's volumes (emptyDir under
``volumes/kubernetes.io~empty-dir/<name>``, as the kubelet lays them out)
and its ``state.json`` (probe results, waiting reasons, events);
``<log_root>/<namespace>_<name>_<uid>/<container>/<attempt>.log`` are the
CRI log files, as under /var/log/pods.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KubeletPaths", "default_log_root", "default_manifest_dir", "default_root_dir"]


def default_root_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/pycri-kubelet")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "pycri-kubelet"


def default_manifest_dir(root: Path) -> Path:
    return root / "manifests"


def default_log_root(root: Path) -> Path:
    return Path("/var/log/pods") if os.geteuid() == 0 else root / "logs"


@dataclass(frozen=True)
class KubeletPaths:
    root: Path
    log_root: Path

    @property
    def pods(self) -> Path:
        return self.root / "pods"

    def pod_dir(self, uid: str) -> Path:
        return self.pods / uid

    def empty_dir(self, uid: str, volume: str) -> Path:
        return self.pod_dir(uid) / "volumes" / "kubernetes.io~empty-dir" / volume

    def state_file(self, uid: str) -> Path:
        return self.pod_dir(uid) / "state.json"

    def log_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.log_root / f"{namespace}_{name}_{uid}"

    @property
    def daemon_file(self) -> Path:
        """The running daemon's settings, so that commands find its endpoint and dirs."""
        return self.root / "kubelet.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "kubelet.lock"
