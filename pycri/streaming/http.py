"""Just enough HTTP/1.1 to route an upgrade request before a protocol takes the socket.

The request head is *peeked*, not read: a WebSocket upgrade then hands the
untouched socket to ``websockets``, which reads the request itself; a SPDY
upgrade consumes the head and answers ``101`` here.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

__all__ = ["RequestHead", "peek_head", "send_response"]

MAX_HEAD = 16 * 1024
#: how long a client may take to send its request line and headers
HEAD_TIMEOUT = 10.0


@dataclass
class RequestHead:
    method: str
    target: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    size: int = 0
    #: bytes after the head had already arrived (a client that did not wait for the answer)
    pipelined: bool = False

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    def header_list(self, name: str) -> list[str]:
        """Every comma-separated value of a (repeatable) header, in order."""
        return [
            item.strip()
            for value in self.headers.get(name.lower(), [])
            for item in value.split(",")
            if item.strip()
        ]

    @property
    def upgrade(self) -> str:
        """``websocket``, ``spdy/3.1`` (lower case) or "" for a plain request."""
        connection = self.header("connection").lower()
        return self.header("upgrade").lower() if "upgrade" in connection else ""


def parse_head(data: bytes) -> RequestHead:
    text = data.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    head = RequestHead(parts[0], parts[1], size=len(data))
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line: {line[:80]!r}")
        head.headers.setdefault(name.strip().lower(), []).append(value.strip())
    return head


def peek_head(sock: socket.socket, timeout: float = HEAD_TIMEOUT) -> RequestHead:
    """The request head, left unread in the socket; ValueError or TimeoutError when bad."""
    deadline = time.monotonic() + timeout
    seen = -1
    hung_up = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for the request head")
        sock.settimeout(remaining)
        data = sock.recv(MAX_HEAD, socket.MSG_PEEK)
        if not data:
            raise ValueError("connection closed before the request head")
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            sock.settimeout(None)
            head = parse_head(data[: end + 4])
            head.pipelined = len(data) > head.size
            return head
        if len(data) >= MAX_HEAD:
            raise ValueError("request head too large")
        if hung_up:
            # a peek still sees the pending bytes, never the EOF behind them
            raise ValueError("connection closed in the middle of the request head")
        if len(data) == seen:
            # a peek returns at once while bytes are pending: wait for more to arrive
            hung_up = _peer_hung_up(sock, 0.01)
        seen = len(data)


def _peer_hung_up(sock: socket.socket, wait: float) -> bool:
    """Wait up to ``wait`` s; whether the peer has shut down its sending side (Linux)."""
    rdhup = getattr(select, "POLLRDHUP", 0)
    if not rdhup or not hasattr(select, "poll"):
        time.sleep(wait)
        return False
    poller = select.poll()
    poller.register(sock, rdhup)
    events = poller.poll(wait * 1000)
    return any(mask & (rdhup | select.POLLHUP | select.POLLERR) for _, mask in events)


def consume(sock: socket.socket, size: int) -> None:
    """Read and drop ``size`` bytes (a head that was only peeked)."""
    while size > 0:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionResetError("connection closed")
        size -= len(chunk)


def send_response(
    sock: socket.socket,
    status: HTTPStatus,
    body: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    """A complete response (the connection is closed after it unless it is a 101)."""
    lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
    all_headers = dict(headers or {})
    if status != HTTPStatus.SWITCHING_PROTOCOLS:
        payload = body.encode()
        all_headers.update(
            {
                "Content-Type": "text/plain; charset=utf-8",
                "Content-Length": str(len(payload)),
                "Connection": "close",
            }
        )
    else:
        payload = b""
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
