"""Byte transports a SPDY session runs over: a raw socket, or WebSocket messages.

client-go's port-forward over WebSocket (``crictl port-forward --transport
websocket``) tunnels the very same SPDY bytes inside binary WebSocket
messages (subprotocol ``SPDY/3.1+portforward.k8s.io``), so the session
only needs ``recv``/``send``/``close``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Protocol

from websockets.exceptions import ConnectionClosed
from websockets.sync.connection import Connection

__all__ = ["SocketTransport", "Transport", "WebSocketTransport"]


class Transport(Protocol):
    def recv(self) -> bytes:
        """The next bytes from the peer; ``b""`` once it is gone."""

    def send(self, data: bytes) -> None:
        """Send ``data``; raises ``OSError`` once the peer is gone."""

    def close(self) -> None:
        """Close the connection (idempotent)."""


class SocketTransport:
    """A hijacked HTTP connection after ``101 Switching Protocols``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()

    def recv(self) -> bytes:
        try:
            return self.sock.recv(64 * 1024)
        except OSError:
            return b""

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class WebSocketTransport:
    """SPDY tunneled in binary WebSocket messages, one frame batch per message."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._send_lock = threading.Lock()

    def recv(self) -> bytes:
        # Go's framer writes a frame field by field, one message each, some empty
        while True:
            try:
                message = self.connection.recv()
            except ConnectionClosed:
                return b""
            if message:
                return message.encode() if isinstance(message, str) else message

    def send(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self.connection.send(data)
            except ConnectionClosed as err:
                raise ConnectionResetError(str(err)) from None

    def close(self) -> None:
        self.connection.close()
