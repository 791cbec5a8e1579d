"""The node's name and address, as the kubelet reports them."""

from __future__ import annotations

import re
import socket

__all__ = ["default_node_name", "host_ip", "valid_node_name"]

_LABEL_VALUE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


def default_node_name() -> str:
    """The hostname, lower-cased (the kubelet's default ``--hostname-override``)."""
    name = socket.gethostname().lower().split(".")[0]
    return name if valid_node_name(name) else "localhost"


def valid_node_name(name: str) -> bool:
    """Usable as a label value (it is the value runtime objects are selected by)."""
    return bool(_LABEL_VALUE.match(name))


def host_ip() -> str:
    """The address other hosts reach this node at (the loopback one when there is none)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent for a UDP connect
        address = str(probe.getsockname()[0])
    except OSError:
        address = "127.0.0.1"
    finally:
        probe.close()
    return address
