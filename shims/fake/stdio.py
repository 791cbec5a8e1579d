"""Live standard input for simulated processes, and a terminal's line discipline.

:class:`Stdin` is what an interactive exec or an attached container reads:
bytes arrive while the process runs. :class:`Terminal` is the pseudo-TTY of
``exec -t``: the client's terminal is in raw mode, so echo, line editing,
``^C`` and ``^D`` happen here, as a kernel pty's canonical mode would do.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

__all__ = ["EOF_ONCE", "Stdin", "Terminal"]

Writer = Callable[[bytes], None]

#: how often a blocked reader checks for signals
POLL = 0.05


class _EofMark:
    """A one-shot end of input: what ``^D`` on an empty line gives a reader."""


EOF_ONCE = _EofMark()


class Stdin:
    """A process's standard input while it runs; thread safe.

    ``read`` blocks until data, a one-shot EOF (``feed_eof``) or the final
    EOF (``close``); ``check`` is called while waiting, so a signal delivered
    to the process (which raises from ``check``) interrupts the read.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: deque[bytes | _EofMark] = deque()
        self._closed = False

    def feed(self, data: bytes) -> None:
        if data:
            with self._cond:
                if not self._closed:
                    self._items.append(bytes(data))
                    self._cond.notify_all()

    def feed_eof(self) -> None:
        with self._cond:
            self._items.append(EOF_ONCE)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    def read(self, check: Callable[[], None], size: int = 65536) -> bytes:
        """Up to ``size`` bytes; ``b""`` at end of input."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait(POLL)
                if not self._items:
                    check()
            if not self._items:
                return b""
            item = self._items.popleft()
            if isinstance(item, _EofMark):
                return b""
            if len(item) > size:
                self._items.appendleft(item[size:])
                item = item[:size]
            return item

    def readline(self, check: Callable[[], None]) -> bytes:
        """One line with its newline; a partial line, or ``b""``, at end of input."""
        line = bytearray()
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait(POLL)
                    if not self._items:
                        check()
                if not self._items:
                    return bytes(line)
                item = self._items.popleft()
                if isinstance(item, _EofMark):
                    if line:  # the EOF ends this partial line; the next read sees it
                        self._items.appendleft(item)
                    return bytes(line)
                end = item.find(b"\n")
                if end >= 0:
                    line += item[: end + 1]
                    if end + 1 < len(item):
                        self._items.appendleft(item[end + 1 :])
                    return bytes(line)
                line += item

    def read_all(self, check: Callable[[], None]) -> bytes:
        """Everything until end of input."""
        data = bytearray()
        while chunk := self.read(check):
            data += chunk
        return bytes(data)


class Terminal:
    """A pty in canonical mode between the client's raw terminal and a process.

    ``input`` gets the client's keystrokes: printable bytes are echoed and
    collected until Enter (``\\r``), which delivers the line; DEL/backspace
    erases; ``^C`` discards the line and interrupts the foreground process;
    ``^D`` on an empty line is a one-shot EOF, elsewhere it delivers the line
    so far. ``output`` maps ``\\n`` to ``\\r\\n`` (ONLCR), as a pty does.
    """

    def __init__(self, stdin: Stdin, screen: Writer, rows: int = 24, cols: int = 80) -> None:
        self.stdin = stdin
        self._screen = screen
        self._line = bytearray()
        self._lock = threading.Lock()
        self.rows, self.cols = rows, cols
        #: called on ^C: interrupts the process in the foreground
        self.interrupt: Callable[[], None] = lambda: None

    def resize(self, cols: int, rows: int) -> None:
        self.rows, self.cols = rows, cols

    def output(self, data: bytes) -> None:
        self._screen(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    def _echo(self, data: bytes) -> None:
        try:
            self._screen(data)
        except OSError:
            pass  # nobody watches the screen (a detached container)

    def input(self, data: bytes) -> None:
        with self._lock:
            for byte in data:
                self._key(byte)

    def _key(self, byte: int) -> None:
        if byte in (0x0D, 0x0A):
            self._echo(b"\r\n")
            self.stdin.feed(bytes(self._line) + b"\n")
            self._line.clear()
        elif byte in (0x7F, 0x08):
            if self._line:
                self._line.pop()
                self._echo(b"\b \b")
        elif byte == 0x03:
            self._echo(b"^C\r\n")
            self._line.clear()
            self.interrupt()
        elif byte == 0x04:
            if self._line:
                self.stdin.feed(bytes(self._line))
                self._line.clear()
            else:
                self.stdin.feed_eof()
        elif byte == 0x15:  # ^U: kill the line
            self._echo(b"\b \b" * len(self._line))
            self._line.clear()
        else:
            self._line.append(byte)
            self._echo(bytes((byte,)))

    def hang_up(self) -> None:
        """The client's terminal is gone: final EOF."""
        self.stdin.close()
