"""Connect to a port inside a network namespace: PortForward for the engine shims.

A pod's ports live in its sandbox's network namespace (``/proc/PID/ns/net``
of the pause container, from ``docker inspect``'s ``State.Pid``). A socket
belongs to the namespace it was created in, so a short-lived thread enters
the namespace (``setns`` changes the calling thread only), creates and
connects the socket, and ends: the rest of the process never moves. Needs
CAP_SYS_ADMIN (pycri-server runs as root for the engine shims anyway).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading

from pycri.errors import FailedPreconditionError, PermissionDeniedError, UnavailableError
from pycri.streaming.pump import splice
from pycri.streaming.streams import PortConnection

__all__ = ["connect_in_netns", "forward_into_pid_netns", "netns_of_pid"]

CLONE_NEWNET = 0x40000000


def netns_of_pid(pid: int) -> str:
    """The network namespace path of a process (a container's init)."""
    return f"/proc/{pid}/ns/net"


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _connect_from(netns: str, port: int, timeout: float) -> socket.socket:
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
    finally:
        os.close(fd)
    errors: list[str] = []
    # containerd's order: IPv4 localhost first, then IPv6
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except OSError as err:
            sock.close()
            errors.append(f"{host}: {err.strerror or err}")
            continue
        sock.settimeout(None)
        return sock
    raise ConnectionRefusedError(errno.ECONNREFUSED, "; ".join(errors))


def connect_in_netns(netns: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection to ``localhost:port`` as seen from inside ``netns``."""
    result: list[socket.socket | BaseException] = []

    def run() -> None:
        try:
            result.append(_connect_from(netns, port, timeout))
        except BaseException as exc:
            result.append(exc)

    # a fresh OS thread that dies afterwards: its namespace change dies with it
    worker = threading.Thread(target=run, name="pycri-netns", daemon=True)
    worker.start()
    worker.join()
    outcome = result[0]
    if isinstance(outcome, socket.socket):
        return outcome
    if isinstance(outcome, PermissionError):
        raise PermissionDeniedError(
            f"cannot enter the network namespace {netns}: {outcome.strerror} "
            "(pycri-server needs CAP_SYS_ADMIN for port forwarding)"
        )
    if isinstance(outcome, FileNotFoundError):
        raise UnavailableError(f"network namespace {netns} is gone (is the pod running?)")
    if isinstance(outcome, OSError):
        raise UnavailableError(
            f"failed to connect to localhost:{port} inside namespace {netns}: {outcome}"
        )
    raise outcome


def forward_into_pid_netns(pid: int, port: int, connection: PortConnection) -> None:
    """PortForward for engine shims: connect to ``port`` in the network namespace
    of ``pid`` (a pod's pause process), then copy both ways until either side closes.
    """
    if pid <= 0:
        raise FailedPreconditionError("the pod sandbox is not running: nothing to forward to")
    splice(connection, connect_in_netns(netns_of_pid(pid), port))
