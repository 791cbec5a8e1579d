"""A dockerd of the cluster's own, so that its kubelet sees no one else's pods.

The kubelet stops and removes every pod on its runtime endpoint that it did
not create, and the docker shim shows all of a dockerd's ``k8s_`` containers:
a kubelet on the host's dockerd would take other users' pods down. This
dockerd shares the host's containerd (in namespaces of its own) and has its
own data root, sockets and bridge. It leaves the host's iptables alone
(``--iptables=false``): the node reaches its pods over the bridge directly,
and pods need no way out in these tests.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
from pathlib import Path

from pycri.testing.kube.daemon import Daemon, wait_until

__all__ = ["PrivateDockerd"]

HOST_CONTAINERD = "/run/containerd/containerd.sock"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


class PrivateDockerd:
    """dockerd on ``<root>/docker.sock`` with bridge ``bridge`` at ``gateway``/24."""

    def __init__(
        self,
        root: Path,
        *,
        bridge: str = "pycri-k8s0",
        gateway: str = "10.244.91.1",
        registry_mirror: str = "http://127.0.0.1:5000",
        containerd: str = HOST_CONTAINERD,
    ) -> None:
        self.root = root
        self.bridge = bridge
        self.gateway = gateway
        self.socket = root / "docker.sock"
        self.namespace = f"pycri-{bridge}"
        self.daemon = Daemon(
            "dockerd",
            [
                "dockerd",
                "--host", f"unix://{self.socket}",
                "--data-root", str(root / "data"),
                "--exec-root", str(root / "exec"),
                "--pidfile", str(root / "dockerd.pid"),
                "--containerd", containerd,
                "--containerd-namespace", self.namespace,
                "--containerd-plugins-namespace", f"{self.namespace}-plugins",
                "--bridge", bridge,
                "--iptables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
                "--registry-mirror", registry_mirror,
            ],
            root / "dockerd.log",
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 60.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        if _ip("link", "show", self.bridge, check=False).returncode != 0:
            _ip("link", "add", "name", self.bridge, "type", "bridge")
        _ip("addr", "replace", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self.daemon.start()
        wait_until("dockerd", self._answers, timeout, log=self.daemon.log)

    def _answers(self) -> bool:
        self.daemon.check()
        return self.socket.exists() and self.get("/_ping") == "OK"

    def get(self, path: str) -> str | None:
        """GET ``path`` on the daemon's socket (curl; None if it does not answer)."""
        result = subprocess.run(
            [
                "curl",
                "-sf",
                "--max-time",
                "10",
                "--unix-socket",
                str(self.socket),
                f"http://d{path}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout if result.returncode == 0 else None

    def containers(self) -> list[str]:
        """Names of every container the daemon has, in any state."""
        listed = self.get("/containers/json?all=1")
        if listed is None:
            raise urllib.error.URLError(f"dockerd at {self.socket} does not answer")
        return [c["Names"][0].lstrip("/") for c in json.loads(listed)]

    def stop(self) -> None:
        """Stop dockerd, then drop its bridge and its containerd namespaces' leftovers."""
        self.daemon.stop(timeout=60)
        _ip("link", "delete", self.bridge, check=False)
        for namespace in (self.namespace, f"{self.namespace}-plugins"):
            self._drop_containerd_namespace(namespace)

    @staticmethod
    def _drop_containerd_namespace(namespace: str) -> None:
        """dockerd leases what it pulls in containerd; release that and the namespace."""
        ctr = ["ctr", "--address", HOST_CONTAINERD, "--namespace", namespace]
        leases = subprocess.run([*ctr, "leases", "ls", "-q"], capture_output=True, text=True,
                                timeout=30).stdout.split()  # fmt: skip
        if leases:
            # --sync: the content and snapshots they held go now, not at the next GC
            subprocess.run([*ctr, "leases", "rm", "--sync", *leases], capture_output=True,
                           timeout=120)  # fmt: skip
        # refused while anything is left in it: the snapshots the leases held go
        # a moment after the leases (the snapshotter's cleanup runs after the GC)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and namespace in PrivateDockerd.containerd_namespaces():
            subprocess.run(["ctr", "--address", HOST_CONTAINERD, "namespaces", "remove",
                            namespace], capture_output=True, timeout=30)  # fmt: skip
            time.sleep(0.5)

    @staticmethod
    def containerd_namespaces() -> list[str]:
        listed = subprocess.run(["ctr", "--address", HOST_CONTAINERD, "namespaces", "ls", "-q"],
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        return listed.stdout.split()
