"""What a shim is handed to serve Exec, Attach and PortForward: blocking byte streams.

The streaming server turns each client connection (WebSocket or SPDY) into
these objects and calls the shim in a thread of its own, so a shim writes
plain blocking code: read the client's stdin with :meth:`Pipe.read`, send
output with ``write``, watch :attr:`StreamIO.cancelled` to learn that the
client went away.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Output",
    "Pipe",
    "PortConnection",
    "ResizeQueue",
    "StreamIO",
    "TerminalSize",
]

#: bytes a pipe buffers before its writer blocks (the client is then throttled)
PIPE_LIMIT = 1 << 20
READ_SIZE = 32 * 1024


@dataclass(frozen=True)
class TerminalSize:
    """A terminal's size in characters, as ``kubectl``/``crictl`` send it."""

    width: int
    height: int


class Output(Protocol):
    """Where a shim writes the process's output (the client's stdout or stderr)."""

    def write(self, data: bytes) -> None:
        """Send ``data``; raises ``OSError`` once the client is gone."""

    def close(self) -> None:
        """No more output on this stream (idempotent)."""


class Pipe:
    """A bounded, thread-safe byte pipe: one side writes, the other reads.

    ``read`` returns ``b""`` once the writer has closed it and the buffer is
    drained. A reader that gives up calls :meth:`close`, after which writes
    are dropped instead of blocking.
    """

    def __init__(self, limit: int = PIPE_LIMIT) -> None:
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self._eof = False
        self._closed = False

    def write(self, data: bytes, timeout: float | None = None) -> bool:
        """Queue ``data``; blocks while the buffer is full (back pressure).

        With a ``timeout``, False when no room came in time (nothing was queued).
        """
        if not data:
            return True

        def room() -> bool:
            # after close_write the data is dropped anyway: don't wait for room to drop it
            return self._size < self._limit or self._closed or self._eof

        with self._cond:
            if not self._cond.wait_for(room, timeout):
                return False
            if self._closed or self._eof:
                return True
            self._chunks.append(bytes(data))
            self._size += len(data)
            self._cond.notify_all()
            return True

    def close_write(self) -> None:
        """End of input: the reader gets ``b""`` after the buffered data."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def close(self) -> None:
        """The reader is done: drop buffered and future data, unblock everyone."""
        with self._cond:
            self._closed = True
            self._eof = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()

    @property
    def at_eof(self) -> bool:
        with self._cond:
            return self._eof and not self._chunks

    def read(self, size: int = READ_SIZE, timeout: float | None = None) -> bytes:
        """Up to ``size`` bytes; ``b""`` at end of input.

        With a ``timeout``, raises :class:`TimeoutError` when nothing arrived.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._chunks or self._eof, timeout):
                raise TimeoutError("no input yet")
            if not self._chunks:
                return b""
            chunk = self._chunks.popleft()
            if len(chunk) > size:
                self._chunks.appendleft(chunk[size:])
                chunk = chunk[:size]
            self._size -= len(chunk)
            self._cond.notify_all()
            return chunk

    def __iter__(self) -> Iterator[bytes]:
        """Chunks until end of input."""
        while chunk := self.read():
            yield chunk


class ResizeQueue:
    """Terminal sizes sent by the client, newest last; closed with the session."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._sizes: deque[TerminalSize] = deque(maxlen=64)
        self._closed = False
        self.latest: TerminalSize | None = None

    def put(self, size: TerminalSize) -> None:
        with self._cond:
            if self._closed:
                return
            self._sizes.append(size)
            self.latest = size
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._sizes

    def get(self, timeout: float | None = None) -> TerminalSize | None:
        """The next size; None once closed (or when ``timeout`` passes)."""
        with self._cond:
            self._cond.wait_for(lambda: self._sizes or self._closed, timeout)
            return self._sizes.popleft() if self._sizes else None

    def __iter__(self) -> Iterator[TerminalSize]:
        """Sizes until the session ends."""
        while (size := self.get()) is not None:
            yield size


@dataclass
class StreamIO:
    """The client's end of an Exec or Attach session.

    ``stdin``/``stdout``/``stderr`` are None when the client did not ask for
    them; with ``tty`` there is no stderr (a terminal has one output) and
    ``resize`` carries the client's window size.
    """

    stdin: Pipe | None = None
    stdout: Output | None = None
    stderr: Output | None = None
    tty: bool = False
    resize: ResizeQueue | None = None
    #: set when the client has gone: stop (kill an exec'd process) and return
    cancelled: threading.Event = field(default_factory=threading.Event)


class PortConnection(Protocol):
    """One forwarded TCP connection, as the client sees it (a byte stream)."""

    cancelled: threading.Event

    def read(self, size: int = READ_SIZE, timeout: float | None = None) -> bytes:
        """Bytes from the client; ``b""`` when it will send no more."""

    def write(self, data: bytes) -> None:
        """Bytes to the client; raises ``OSError`` once it is gone."""

    def close(self) -> None:
        """We will send no more (a half close; idempotent)."""
