"""A WebSocket client for streaming URLs: what ``pycrictl exec``/``attach``/``port-forward`` use.

It speaks the channel protocol to any CRI runtime's streaming server
(pycri-server, containerd, CRI-O, cri-dockerd): ``v5.channel.k8s.io``
where offered (stdin can then reach EOF), else ``v4.channel.k8s.io``; and
the kubelet's port-forward channels, one URL per forwarded connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from pycri.streaming import channels
from pycri.streaming.streams import TerminalSize

__all__ = ["RemoteCommand", "StreamError", "forward_connection"]

Writer = Callable[[bytes], None]
OPEN_TIMEOUT = 10.0
#: after the local side stops sending, how long the pod's side may take to finish
HALF_CLOSE_GRACE = 10.0


class StreamError(Exception):
    """The session failed: the server's error message (not a non-zero exit)."""


def websocket_url(url: str) -> str:
    """``http://host/exec/TOKEN`` -> ``ws://host/exec/TOKEN`` (https -> wss)."""
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    return url


@contextlib.contextmanager
def _open(url: str, protocols: tuple[str, ...]) -> Iterator[ClientConnection]:
    with contextlib.ExitStack() as stack:
        try:
            ws = stack.enter_context(
                connect(
                    websocket_url(url),
                    subprotocols=[Subprotocol(p) for p in protocols],
                    compression=None,
                    open_timeout=OPEN_TIMEOUT,
                    max_size=None,
                )
            )
        except (OSError, WebSocketException) as err:
            where = url.split("?")[0].rsplit("/", 1)[0]  # not the token: it is a credential
            raise StreamError(f"cannot open {where}/...: {err}") from None
        yield ws


class RemoteCommand:
    """One Exec or Attach session: send stdin and resizes, receive output and the exit code."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._stack = contextlib.ExitStack()
        self._ws: ClientConnection | None = None
        self._codec = channels.ChannelCodec(channels.V4)
        self._lock = threading.Lock()
        self._stdin_closed = False

    def __enter__(self) -> Self:
        self._ws = self._stack.enter_context(_open(self.url, (channels.V5, channels.V4)))
        self._codec = channels.ChannelCodec(self._ws.subprotocol or channels.V1)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    @property
    def protocol(self) -> str:
        return self._codec.protocol

    def _send(self, channel: int, data: bytes) -> None:
        assert self._ws is not None, "use RemoteCommand as a context manager"
        with self._lock, contextlib.suppress(ConnectionClosed):
            self._ws.send(self._codec.encode(channel, data))

    def send_stdin(self, data: bytes) -> None:
        if data and not self._stdin_closed:
            self._send(channels.STDIN, data)

    def close_stdin(self) -> None:
        """End of input: a v5 CLOSE; v4 has no way to say it (the command keeps reading)."""
        if not self._stdin_closed and self._codec.has_close:
            self._send(channels.CLOSE, bytes((channels.STDIN,)))
        self._stdin_closed = True

    def resize(self, size: TerminalSize) -> None:
        payload = json.dumps({"Width": size.width, "Height": size.height}).encode()
        self._send(channels.RESIZE, payload)

    def run(self, stdout: Writer, stderr: Writer | None = None) -> int:
        """Copy output until the server closes; the exit code, or StreamError."""
        assert self._ws is not None, "use RemoteCommand as a context manager"
        status = b""
        try:
            for message in self._ws:
                frame = self._codec.decode(message)
                if frame is None or not frame.data:
                    continue
                if frame.number == channels.STDOUT:
                    stdout(frame.data)
                elif frame.number == channels.STDERR:
                    (stderr or stdout)(frame.data)
                elif frame.number == channels.ERROR:
                    status += frame.data
        except ConnectionClosed as err:
            if not status:
                raise StreamError(f"the streaming connection broke: {err}") from None
        code, message = channels.decode_status(status)
        if code is None:
            raise StreamError(message or "the remote command failed")
        return code


def forward_connection(url: str, sock: socket.socket) -> str:
    """Copy ``sock`` to and from the port of a one-port PortForward URL; an error, or ""."""
    with _open(url, (channels.V4,)) as ws:
        return _forward(ws, sock)


def _forward(ws: ClientConnection, sock: socket.socket) -> str:
    codec = channels.ChannelCodec(ws.subprotocol or channels.V1)
    seen: set[int] = set()
    errors: list[bytes] = []
    finished = threading.Event()

    def upstream() -> None:
        try:
            while data := sock.recv(64 * 1024):
                ws.send(codec.encode(0, data))
        except (OSError, ConnectionClosed):
            return
        # The protocol cannot half-close: give the pod's side time to answer and hang
        # up (a request-response client half-closes), then end the session ourselves.
        if not finished.wait(HALF_CLOSE_GRACE):
            ws.close()

    sender = threading.Thread(target=upstream, name="pycrictl-forward", daemon=True)
    sender.start()
    try:
        for message in ws:
            frame = codec.decode(message)
            if frame is None:
                continue
            if frame.number not in seen:
                seen.add(frame.number)  # each channel opens with the port number
                continue
            if frame.number == 0:
                sock.sendall(frame.data)
            elif frame.number == 1:
                errors.append(frame.data)
    except (OSError, ConnectionClosed):
        pass
    finally:
        finished.set()
        ws.close()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(5)
        sock.close()
    return b"".join(errors).decode("utf-8", "replace")
