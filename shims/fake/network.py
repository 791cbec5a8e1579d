"""A pod's simulated network namespace: ports that simulated servers listen on.

Containers of one pod share it (``localhost`` between them, as with a real
sandbox); host-network pods share the node's. A connection is a real
socket pair, so a simulated server and whoever connects (PortForward,
``nc``, ``wget``) use ordinary socket calls.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading

from pycri.errors import UnavailableError

__all__ = ["FakeNetwork", "Listener", "PortInUseError"]

#: connections waiting to be accepted, per listener (a listen backlog)
BACKLOG = 64


class PortInUseError(OSError):
    """``bind: address already in use``."""


class Listener:
    """A listening port; ``accept`` hands out the server ends of connections."""

    def __init__(self, network: FakeNetwork, port: int) -> None:
        self.network = network
        self.port = port
        self._pending: queue.Queue[socket.socket | None] = queue.Queue(BACKLOG)
        self.closed = False

    def accept(self, timeout: float | None = None) -> socket.socket | None:
        """The next connection; None when ``timeout`` passed or the listener closed."""
        if self.closed:
            return None
        try:
            return self._pending.get(timeout=timeout)
        except queue.Empty:
            return None

    def _enqueue(self, server_end: socket.socket) -> bool:
        try:
            self._pending.put_nowait(server_end)
            return True
        except queue.Full:
            return False

    def close(self) -> None:
        self.network._unbind(self)
        self.closed = True
        while True:
            try:
                pending = self._pending.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                pending.close()  # never accepted: the client sees a reset
        with contextlib.suppress(queue.Full):
            self._pending.put_nowait(None)  # wakes a blocked accept()


class FakeNetwork:
    """The ports of one network namespace; thread safe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._ports: dict[int, Listener] = {}

    def listen(self, port: int) -> Listener:
        if not 0 < port < 65536:
            raise ValueError(f"port {port} out of range")
        with self._lock:
            if port in self._ports:
                raise PortInUseError(f"bind: address already in use (port {port})")
            listener = Listener(self, port)
            self._ports[port] = listener
            return listener

    def _unbind(self, listener: Listener) -> None:
        with self._lock:
            if self._ports.get(listener.port) is listener:
                del self._ports[listener.port]

    @property
    def ports(self) -> list[int]:
        with self._lock:
            return sorted(self._ports)

    def connect(self, port: int) -> socket.socket:
        """A connection to ``port``; UnavailableError (connection refused) if nobody listens."""
        with self._lock:
            listener = self._ports.get(port)
        if listener is not None:
            client_end, server_end = socket.socketpair()
            if listener._enqueue(server_end):
                return client_end
            client_end.close()
            server_end.close()
        raise UnavailableError(
            f"failed to connect to localhost:{port} inside the {self.name} network namespace: "
            "connection refused"
        )

    def close(self) -> None:
        """The namespace is torn down: every listener goes."""
        with self._lock:
            listeners = list(self._ports.values())
        for listener in listeners:
            listener.close()
