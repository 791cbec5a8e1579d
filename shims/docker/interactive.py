"""Interactive Exec and Attach on Docker: a hijacked connection between the client and a process.

``POST /exec/{id}/start`` and ``POST /containers/{id}/attach`` sent with
``Upgrade: tcp`` are answered ``101 UPGRADED``; the connection then carries
the client's stdin one way and the process's output the other: raw bytes
with a terminal, Docker's 8-byte framed stdout/stderr stream without one.
The output is read through the response's own buffer (the bytes read along
with the headers are not lost) and stdin is written to its socket.

Stdin's end is passed on as a half close (``SHUT_WR``), after which Docker
closes the process's stdin, except where Docker does something else with
it: on a terminal it would end the session's output and leave the process
running, so ^D is typed instead, and again until the session ends (see
``pycri.streaming.pump.type_eof``, as for pycri's own terminals); and
an attach to a container without ``StdinOnce`` would end at once while the
container runs on, so there nothing is passed on.

Docker cannot kill an exec'd process and leaves it running when its client
goes away, so a client leaving kills it through the host pid (as ExecSync's
timeout does). Attach only detaches: the container keeps running.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from io import BufferedReader
from typing import Any

import requests

from pycri.errors import (
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
)
from pycri.streaming.pump import copy_input, type_eof
from pycri.streaming.streams import Output, ResizeQueue, StreamIO, TerminalSize
from pycri_shims.docker.connection import DockerConnection
from pycri_shims.docker.execsync import exec_exit_code, kill_exec
from pycri_shims.docker.streams import STDERR, open_stream, read_frames, response_socket

__all__ = ["attach", "exec_stream"]

log = logging.getLogger(__name__)

_UPGRADE = {"Connection": "Upgrade", "Upgrade": "tcp"}
#: how often waiting threads look at ``cancelled`` and the end of the session
POLL = 0.25
CHUNK = 32 * 1024
#: resizing right after start may find the process not ready yet: retry (as the docker CLI does)
RESIZE_ATTEMPTS = 10
#: Docker holds back input that could start its detach keys and detaches on all of them, and
#: they cannot be switched off. The CRI has no detach: the default, ^P ^Q, made readline's ^P
#: wait for the next key (kubernetes#71765). These are as unlikely as Docker allows; only a
#: NUL (^@, set-mark, invisible anyway) waits for the key after it.
DETACH_KEYS = "ctrl-@,ctrl-^,ctrl-_,ctrl-@,ctrl-^,ctrl-_,ctrl-@,ctrl-^"


def exec_stream(conn: DockerConnection, container_id: str, cmd: Sequence[str], io: StreamIO) -> int:
    """Run ``cmd`` in the container wired to ``io``; its exit code (-1 if the client left)."""
    if not cmd:
        raise InvalidArgumentError("cmd is required")
    # the streaming server names the container already: "exec in container ...: <this>"
    what = "Docker exec"
    with conn.errors(what):
        api = conn.api
        exec_id: str = api.exec_create(
            container_id,
            list(cmd),
            stdin=io.stdin is not None,
            stdout=True,
            stderr=not io.tty,
            tty=io.tty,
            detach_keys=DETACH_KEYS,
        )["Id"]
        response = open_stream(
            api,
            "POST",
            f"/exec/{exec_id}/start",
            body={"Detach": False, "Tty": io.tty},
            headers=_UPGRADE,
        )

    def resize(size: TerminalSize) -> None:
        with conn.errors(f"resizing the terminal of an exec in {container_id[:13]}"):
            conn.api.exec_resize(exec_id, height=size.height, width=size.width)

    ended = _Session(response, io, raw=io.tty).run(
        stdin_end=_StdinEnd.TYPE_EOF if io.tty else _StdinEnd.HALF_CLOSE,
        resize=resize if io.tty else None,
        on_cancel=lambda: kill_exec(conn, exec_id, container_id, why="abandoned"),
    )
    if not ended:
        return -1
    return exec_exit_code(conn, exec_id, what)


def attach(conn: DockerConnection, container_id: str, io: StreamIO) -> None:
    """Connect ``io`` to the container's main process until it exits or the client leaves."""
    what = "Docker attach"
    with conn.errors(what):
        api = conn.api
        info: Mapping[str, Any] = api.inspect_container(container_id)
        if not (info.get("State") or {}).get("Running"):
            raise FailedPreconditionError(
                f"container {container_id[:13]} is not running: cannot attach to it"
            )
        config: Mapping[str, Any] = info.get("Config") or {}
        tty = bool(config.get("Tty"))
        # Docker ignores stdin unless the container was created with it (OpenStdin)
        stdin = io.stdin is not None and bool(config.get("OpenStdin"))
        response = open_stream(
            api,
            "POST",
            f"/containers/{container_id}/attach",
            params={
                "stream": 1,
                "stdin": int(stdin),
                "stdout": 1,
                "stderr": 1,
                "detachKeys": DETACH_KEYS,
            },
            headers=_UPGRADE,
        )

    def resize(size: TerminalSize) -> None:
        with conn.errors(f"resizing the terminal of container {container_id[:13]}"):
            conn.api.resize(container_id, height=size.height, width=size.width)

    end = _StdinEnd.TYPE_EOF if tty else _StdinEnd.HALF_CLOSE
    _Session(response, io, raw=tty, stdin=stdin).run(
        stdin_end=end if config.get("StdinOnce") else _StdinEnd.IGNORE,
        resize=resize if tty else None,
        on_cancel=lambda: None,
    )


class _StdinEnd(enum.Enum):
    """What the end of the client's stdin does (see the module docstring)."""

    HALF_CLOSE = enum.auto()
    TYPE_EOF = enum.auto()
    IGNORE = enum.auto()


class _Session:
    """One hijacked connection, pumped both ways until the process's output ends."""

    def __init__(
        self, response: requests.Response, io: StreamIO, *, raw: bool, stdin: bool = True
    ) -> None:
        self.response = response
        self.io = io
        self.raw = raw
        self.stdin = io.stdin if stdin else None
        if io.stdin is not None and not stdin:
            io.stdin.close()  # unread: drop what the client sends rather than block it
        sock = response_socket(response)
        reader = getattr(getattr(response.raw, "_fp", None), "fp", None)
        if sock is None or reader is None:
            response.close()
            raise InternalError("cannot reach the socket of Docker's hijacked connection")
        self.sock: socket.socket = sock
        self.reader: BufferedReader = reader
        self.done = threading.Event()

    def run(
        self,
        *,
        stdin_end: _StdinEnd,
        resize: Callable[[TerminalSize], None] | None,
        on_cancel: Callable[[], None],
    ) -> bool:
        """Pump until the output ends (True) or the client leaves (False)."""
        io = self.io
        threads: list[threading.Thread] = []

        def start(target: Callable[..., None], *args: Any) -> None:
            thread = threading.Thread(target=target, args=args, name="pycri-docker", daemon=True)
            thread.start()
            threads.append(thread)

        try:
            start(self._watch, on_cancel)
            if resize is not None and io.resize is not None:
                # a size the client sent already is set before its input flows
                self._apply_first_size(io.resize, resize)
                start(self._follow_resizes, io.resize, resize)
            if self.stdin is not None:
                eof = {
                    _StdinEnd.HALF_CLOSE: self._half_close,
                    _StdinEnd.TYPE_EOF: self._type_eof,
                }.get(stdin_end)
                threads.append(copy_input(self.stdin, self.sock.sendall, eof, name="pycri-docker"))
            self._copy_output()
        except _ClientGone:
            # its output refused the bytes: as if the client had cancelled
            if not io.cancelled.is_set():
                on_cancel()
            return False
        finally:
            self.done.set()
            if io.stdin is not None:
                io.stdin.close()  # unblocks the stdin copy
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            for thread in threads:
                thread.join(POLL * 4)
            self.response.close()
        return not io.cancelled.is_set()

    def _copy_output(self) -> None:
        """Until Docker ends the stream (or drops it: the session is over either way)."""
        stdout, stderr = self.io.stdout, self.io.stderr
        with contextlib.suppress(OSError, ValueError):
            if self.raw:
                while chunk := self.reader.read1(CHUNK):
                    _write(stdout, chunk)
                return
            for stream, payload in read_frames(self.reader.read):
                _write(stderr if stream == STDERR else stdout, payload)

    def _half_close(self) -> None:
        if not self.done.is_set():
            self.sock.shutdown(socket.SHUT_WR)

    def _type_eof(self) -> None:
        if not self.done.is_set():
            type_eof(self.sock.sendall, self.done)

    def _watch(self, on_cancel: Callable[[], None]) -> None:
        """When the client leaves: kill what must not outlive it, then end the session."""
        while not self.done.is_set():
            if self.io.cancelled.wait(POLL):
                if not self.done.is_set():
                    on_cancel()
                    with contextlib.suppress(OSError):
                        self.sock.shutdown(socket.SHUT_RDWR)
                return

    def _apply_first_size(self, queue: ResizeQueue, resize: Callable[[TerminalSize], None]) -> None:
        latest = None
        while (size := queue.get(timeout=0)) is not None:
            latest = size
        if latest is not None:
            self._resize(resize, latest)

    def _follow_resizes(self, queue: ResizeQueue, resize: Callable[[TerminalSize], None]) -> None:
        while not self.done.is_set():
            size = queue.get(timeout=POLL)
            if size is None:
                if queue.closed:
                    return
                continue
            self._resize(resize, size)

    def _resize(self, resize: Callable[[TerminalSize], None], size: TerminalSize) -> None:
        for attempt in range(RESIZE_ATTEMPTS):
            try:
                resize(size)
                return
            except Exception as err:  # a size is best effort: never end the session over it
                gone = isinstance(err, NotFoundError)  # the process failed to start, or ended
                if gone or attempt == RESIZE_ATTEMPTS - 1 or self.done.is_set():
                    log.debug("cannot resize the terminal: %s", err)
                    return
                time.sleep(0.01 * (attempt + 1))


class _ClientGone(Exception):
    """Writing to the client failed: it has left."""


def _write(output: Output | None, data: bytes) -> None:
    if output is not None and data:
        try:
            output.write(data)
        except OSError as err:
            raise _ClientGone(str(err)) from err
