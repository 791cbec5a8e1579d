"""The shim's options: strings from ``--shim-option key=value``, checked once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CRI_PLUGIN_NAMESPACE", "NerdctlOptions"]

#: containerd's own CRI plugin lives here; sharing it would mix two CRIs' state
CRI_PLUGIN_NAMESPACE = "k8s.io"


@dataclass(frozen=True)
class NerdctlOptions:
    """Everything configurable; every field can be given as a string."""

    nerdctl: str = "/usr/local/bin/nerdctl"
    #: containerd's own CLI, for the one thing nerdctl refuses: RemoveImage of an image
    #: a running container uses (found on PATH when not a path)
    ctr: str = "ctr"
    #: containerd's socket (nerdctl ``--address``)
    address: str = "/run/containerd/containerd.sock"
    namespace: str = "pycri"
    #: empty: nerdctl's default (overlayfs)
    snapshotter: str = ""
    cni_path: str = "/usr/lib/cni"
    cni_netconfpath: str = "/etc/cni/net.d"
    #: the nerdctl network pods join (``bridge`` is nerdctl's default one)
    network: str = "bridge"
    #: the sandbox image: pulled when missing (nerdctl's own credentials), reported pinned
    pause_image: str = "registry.k8s.io/pause:3.9"
    #: seconds any nerdctl call may take before it is killed
    timeout: float = 60.0
    #: seconds an image pull may take
    pull_timeout: float = 600.0
    #: registries pulled over plain HTTP: hosts (any port) or host:port, comma separated
    insecure_registries: tuple[str, ...] = ("127.0.0.1", "localhost")
    #: where the runc shim keeps container state (start times, init pids)
    runc_root: str = "/run/containerd/runc"
    cgroup_root: str = "/sys/fs/cgroup"
    #: containerd's root (image filesystem info)
    containerd_root: str = "/var/lib/containerd"
    #: pycri's own files (the runc wrapper of specedit.py, image volumes, the pods'
    #: UpdatePodSandboxResources records); root's alone
    state_dir: str = "/run/pycri/nerdctl"

    def __post_init__(self) -> None:
        if not self.namespace:
            raise ValueError("namespace must not be empty")
        if self.namespace == CRI_PLUGIN_NAMESPACE:
            raise ValueError(
                f"namespace {CRI_PLUGIN_NAMESPACE!r} belongs to containerd's own CRI plugin; "
                "choose another one (default: pycri)"
            )
        if self.timeout <= 0 or self.pull_timeout <= 0:
            raise ValueError("timeouts must be positive")

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> NerdctlOptions:
        """Build from strings; ValueError/TypeError name the bad option."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for key, raw in options.items():
            name = key.replace("-", "_")
            if name not in fields:
                known = ", ".join(sorted(fields))
                raise TypeError(f"unknown nerdctl shim option {key!r}; known: {known}")
            default = fields[name].default
            if isinstance(default, float):
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise ValueError(f"option {key}: {raw!r} is not a number") from None
            elif isinstance(default, tuple):
                values[name] = tuple(p.strip() for p in raw.split(",") if p.strip())
            else:
                values[name] = raw
        return cls(**values)  # type: ignore[arg-type]

    def global_args(self) -> list[str]:
        """nerdctl's global flags for every call."""
        args = [
            "--address",
            self.address,
            "--namespace",
            self.namespace,
            "--cni-path",
            self.cni_path,
            "--cni-netconfpath",
            self.cni_netconfpath,
            # fixed, so the shim knows where each container's cgroup is
            "--cgroup-manager",
            "cgroupfs",
        ]
        if self.snapshotter:
            args += ["--snapshotter", self.snapshotter]
        return args

    def is_insecure(self, domain: str) -> bool:
        """Whether pulls from ``domain`` (host[:port]) may use plain HTTP."""
        host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
        host = host.strip("[]")
        return any(entry in (domain, host) for entry in self.insecure_registries)
