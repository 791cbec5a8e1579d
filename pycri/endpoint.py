"""CRI endpoints as crictl and the kubelet write them: ``unix:///path`` or ``tcp://host:port``."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Endpoint", "default_socket_path", "parse_endpoint"]


@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "unix" or "tcp"
    path: str = ""  # unix
    host: str = ""  # tcp
    port: int = 0  # tcp

    @property
    def grpc_target(self) -> str:
        """The target string grpc.insecure_channel / add_insecure_port understand."""
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.scheme == "unix":
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        return f"tcp://{self.grpc_target}"


def default_socket_path() -> Path:
    """/run/pycri/pycri.sock for root, else under $XDG_RUNTIME_DIR (or /tmp/pycri-UID)."""
    if os.geteuid() == 0:
        return Path("/run/pycri/pycri.sock")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime_dir) if runtime_dir else Path(f"/tmp/pycri-{os.geteuid()}")
    return base / "pycri" / "pycri.sock"


def parse_endpoint(text: str) -> Endpoint:
    """Parse an endpoint; a bare absolute path means a unix socket."""
    if not text:
        raise ValueError("empty endpoint: use unix:///path/to.sock or tcp://127.0.0.1:PORT")
    if text.startswith("unix://"):
        path = text.removeprefix("unix://")
    elif text.startswith("unix:"):
        path = text.removeprefix("unix:")
    elif text.startswith("/"):
        path = text
    elif text.startswith("tcp://"):
        hostport = text.removeprefix("tcp://")
        host, sep, port_text = hostport.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(f"endpoint {text!r} needs a port: tcp://127.0.0.1:PORT")
        host = host.strip("[]") or "127.0.0.1"
        port = int(port_text)
        if port > 65535:
            raise ValueError(f"endpoint {text!r}: port {port} is out of range")
        return Endpoint("tcp", host=host, port=port)
    else:
        raise ValueError(
            f"endpoint {text!r} is not understood: use unix:///path/to.sock or tcp://HOST:PORT"
        )
    if not path.startswith("/"):
        raise ValueError(f"unix endpoint {text!r} needs an absolute path")
    return Endpoint("unix", path=path)
