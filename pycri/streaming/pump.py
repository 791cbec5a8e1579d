"""Copy loops shims share: a forwarded connection to a socket, stdin to a writer.

They poll ``cancelled`` every ``POLL`` seconds so that a client who leaves
ends the copy promptly, and never close a socket another thread still uses.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from pycri.streaming.streams import Pipe, PortConnection

__all__ = ["copy_input", "splice", "type_eof"]

POLL = 0.25
CHUNK = 64 * 1024
EOF_RETYPE = 1.0  # seconds between the ^Ds of type_eof


def splice(connection: PortConnection, sock: socket.socket) -> None:
    """Copy between ``connection`` and a connected ``sock`` until the socket's peer is done.

    The client's EOF half-closes the socket (``SHUT_WR``), so a server still
    answers a request whose sender finished; the copy ends when the socket
    side reaches EOF or the client is gone. ``sock`` is closed on return.
    """
    done = threading.Event()

    def upstream() -> None:
        try:
            while not done.is_set():
                try:
                    data = connection.read(CHUNK, timeout=POLL)
                except TimeoutError:
                    continue
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    return
                sock.sendall(data)
        except OSError:
            pass  # the socket side is gone: downstream sees it too

    sender = threading.Thread(target=upstream, name="pycri-splice", daemon=True)
    sender.start()
    sock.settimeout(POLL)
    try:
        while not connection.cancelled.is_set():
            try:
                data = sock.recv(CHUNK)
            except TimeoutError:
                continue
            if not data:
                break
            connection.write(data)
    except OSError:
        pass  # reset by either side: the forward is over
    finally:
        done.set()
        connection.close()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(POLL * 4)
        sock.close()


def copy_input(
    source: Pipe,
    write: Callable[[bytes], None],
    on_eof: Callable[[], None] | None = None,
    *,
    name: str = "pycri-stdin",
) -> threading.Thread:
    """Start a daemon thread copying ``source`` to ``write``; ``on_eof`` at its end.

    Errors from ``write`` (the process is gone) end the copy quietly.
    """

    def run() -> None:
        try:
            for chunk in source:
                write(chunk)
        except (OSError, ValueError):
            return
        if on_eof is not None:
            with contextlib.suppress(OSError, ValueError):
                on_eof()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def type_eof(write: Callable[[bytes], None], done: threading.Event) -> None:
    """Type a terminal's end of input, ^D, again every ``EOF_RETYPE`` seconds until ``done``.

    A terminal has no end of file: ^D at the start of a line is how one is typed.
    Once is not enough. A ^D that arrives before the program has set its terminal
    up (a shell's line editor leaves canonical mode) becomes a NUL it ignores, and
    the session then waits for input that will never come. Stdin has ended, so
    every later read should see the end too, which is what typing it again says.
    """
    while True:
        write(b"\x04")
        if done.wait(EOF_RETYPE):
            return
