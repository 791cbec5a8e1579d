"""Where a command finds its endpoint, directories and node name.

A flag (or its environment variable) wins; then the settings the daemon
wrote when it started (``<root>/kubelet.json``), so that ``pycri-kubelet
get pods`` finds whatever ``pycri-kubelet serve`` was started with; then
the defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pycri.kubelet.sync.nodeinfo import default_node_name
from pycri.kubelet.sync.paths import (
    KubeletPaths,
    default_log_root,
    default_manifest_dir,
    default_root_dir,
)
from pycri.kubelet.sync.podstate import write_json

__all__ = ["DEFAULT_ENDPOINT", "KubeletSettings", "resolve_settings"]

#: the real kubelet's default --container-runtime-endpoint
DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"


@dataclass(frozen=True)
class KubeletSettings:
    """The node a ``pycri-kubelet`` command (or the daemon) works on: endpoint, directories, name.

    The daemon saves them as ``<root>/kubelet.json``.
    """

    endpoint: str
    image_endpoint: str
    root_dir: Path
    manifest_dir: Path
    log_root: Path
    node_name: str
    timeout: float = 10.0
    #: where each setting came from, for error messages
    endpoint_source: str = "default"

    @property
    def paths(self) -> KubeletPaths:
        return KubeletPaths(self.root_dir, self.log_root)

    def save(self) -> None:
        """Record these settings for the commands run while the daemon serves."""
        data: dict[str, Any] = {k: str(v) for k, v in asdict(self).items()}
        data["pid"] = os.getpid()
        write_json(self.paths.daemon_file, data)


def _daemon_settings(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / "kubelet.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def resolve_settings(
    *,
    endpoint: str | None = None,
    image_endpoint: str | None = None,
    root_dir: str | None = None,
    manifest_dir: str | None = None,
    log_root: str | None = None,
    node_name: str | None = None,
    timeout: float = 10.0,
) -> KubeletSettings:
    root = Path(root_dir) if root_dir else default_root_dir()
    saved = _daemon_settings(root)
    if endpoint:
        source = "--endpoint / $CONTAINER_RUNTIME_ENDPOINT"
    elif saved.get("endpoint"):
        endpoint, source = saved["endpoint"], f"the daemon's settings in {root / 'kubelet.json'}"
    else:
        endpoint, source = DEFAULT_ENDPOINT, "the default"
    return KubeletSettings(
        endpoint=endpoint,
        image_endpoint=image_endpoint or saved.get("image_endpoint") or endpoint,
        root_dir=root,
        manifest_dir=Path(manifest_dir or saved.get("manifest_dir") or default_manifest_dir(root)),
        log_root=Path(log_root or saved.get("log_root") or default_log_root(root)),
        node_name=node_name or saved.get("node_name") or default_node_name(),
        timeout=timeout,
        endpoint_source=source,
    )
