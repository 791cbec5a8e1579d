"""Streaming Exec and Attach on nerdctl 1.7.7: ``exec -i -t`` in a pty, attach through the log.

Exec runs ``nerdctl exec [-i] [-t] ID CMD...`` with
:func:`pycri.streaming.process.run_attached`. Three things about it are
nerdctl's own and handled here:

- **The exit code.** ``nerdctl exec`` exits 1 whatever the process
  returned, and logs ``level=fatal msg="exec failed with exit code N"`` as
  the very last thing it writes to its stderr: after the process's output
  has been copied (the exec is deleted, which drains its IO, before the
  error reaches ``main``), in one ``write`` (atomic on a pipe). With a TTY
  nerdctl's stderr is a pipe of its own: its console is found on stdout
  (``console.Current`` tries stderr, stdout, stdin), and the process's
  stderr shares the terminal, so everything on that pipe is nerdctl's.
  Without one the process's stderr and nerdctl's share the pipe, and
  :class:`ExecStderr` passes everything on at once except what may be
  nerdctl's line: a complete ``level=fatal`` line ending what has arrived
  so far (if more comes, it was the process's and follows; at the end it
  is nerdctl's if nerdctl failed), or the start of one (a read may cut
  the line; released after 0.2 s unless the rest comes). The code is
  read from the end of the whole stream, so a process that prints such
  lines itself (even as its last, or with the same words) cannot confuse it.
- **Errors.** A failure of nerdctl's own (container not running, no such
  executable) is the same kind of last line with another message: it
  becomes a pycri error, not output.
- **Cancel.** The client leaving makes run_attached stop ``nerdctl exec``,
  which does not stop the process it started (with a TTY nerdctl forwards
  no signal at all). :func:`stop_exec` first freezes nerdctl, finds the
  exec id in the names of the FIFOs it holds and the process's pid in the
  runc shim's pid file, kills that process and its descendants, then lets
  nerdctl see the exit and delete the exec.

Attach cannot use ``nerdctl attach``: a container started by ``nerdctl
start`` has a logging binary as its IO, which ``attach`` refuses ("failed
to open stdout fifo: error creating fifo binary://..."). Its output is the
json log the shim already follows, read from its end on (the lines as
nerdctl's logger writes them: whole lines, ``\\r`` at a line's end
dropped). Its stdin cannot be reached at all: see :data:`NO_STDIN`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pycri.core.engine import CONTAINER_KIND
from pycri.errors import CRIError, FailedPreconditionError, UnavailableError, UnimplementedError
from pycri.streaming.process import run_attached
from pycri.streaming.streams import Output, StreamIO
from pycri_shims.nerdctl import convert, host
from pycri_shims.nerdctl.host import Cgroups
from pycri_shims.nerdctl.logs import LogFollowers
from pycri_shims.nerdctl.logsource import json_log_source
from pycri_shims.nerdctl.lookup import Lookup
from pycri_shims.nerdctl.runner import INSTALL_HINT, NerdctlRunner, error_for, fatal_messages

__all__ = [
    "NO_STDIN",
    "ExecStderr",
    "attach",
    "attach_log",
    "closing_message",
    "exec_stream",
    "holdback",
    "json_log_path",
    "stop_exec",
]

log = logging.getLogger(__name__)

#: why Attach cannot feed a container's stdin through nerdctl 1.7.7 (checked, not assumed)
NO_STDIN = (
    "the nerdctl shim cannot attach stdin: with nerdctl 1.7.7 a container started by "
    "`nerdctl start` has no stdin (it reads /dev/null, or a terminal nobody writes to) and "
    "`nerdctl attach` refuses it; only `nerdctl run -i` and `start --attach` (with a TTY) "
    "give one, through a nerdctl process that would have to outlive pycri-server, and "
    "`start --attach` writes no log. Attach without stdin to follow the container's output"
)

# nerdctl's logrus line on a pipe: time="..." level=fatal msg="..." (msg Go-quoted)
_CLOSING_LINE = re.compile(rb'time="[^"\n]*" level=fatal msg=(?:"(?:[^"\\\n]|\\.)*"|[^"\s]\S*)\n')
_HEAD = b'time="'
_MIDDLE = b'" level=fatal msg='
_PARTIAL_MSG = re.compile(rb'(?:"(?:[^"\\\n]|\\.)*(?:\\|")?|[^"\s]\S*)?')
#: longer lines may reach a pipe in pieces (PIPE_BUF) and are not nerdctl's exit line
_LONGEST_LINE = 4096
_LONGEST_STAMP = 64
#: how long the start of what may be nerdctl's line waits for its rest
_RELEASE = 0.2
_EXIT = re.compile(r"exec failed with exit code (\d+)")
_NOT_RUNNING = re.compile(r"cannot exec in a stopped state|no running task found", re.IGNORECASE)
#: how much of nerdctl's stderr is kept for error messages
_TAIL = 8192
#: after the client left: how long the exec's pid may take to appear, and nerdctl to exit
_START_WAIT = 1.0
_EXIT_WAIT = 2.0


def _could_grow_into_closing_line(tail: bytes) -> bool:
    """Whether ``tail`` (no newline) is the start of a ``level=fatal`` line."""
    if len(tail) > _LONGEST_LINE:
        return False
    if len(tail) <= len(_HEAD):
        return _HEAD.startswith(tail)
    if not tail.startswith(_HEAD):
        return False
    stamp, quote, rest = tail[len(_HEAD) :].partition(b'"')
    if len(stamp) > _LONGEST_STAMP:
        return False
    if not quote:
        return True
    rest = quote + rest
    if len(rest) <= len(_MIDDLE):
        return _MIDDLE.startswith(rest)
    return rest.startswith(_MIDDLE) and bool(_PARTIAL_MSG.fullmatch(rest, len(_MIDDLE)))


def holdback(buffer: bytes) -> tuple[int, bool]:
    """Where the part of ``buffer`` that may be nerdctl's closing line starts.

    ``(start, complete)``: ``buffer[start:]`` is a whole ``level=fatal``
    line (complete) or could still become one; ``(len(buffer), False)``
    when the end of ``buffer`` cannot be such a line. The line may start
    mid-line, after process output without a newline.
    """
    complete = buffer.endswith(b"\n")
    line_start = buffer.rfind(b"\n", 0, len(buffer) - 1 if complete else len(buffer)) + 1
    at = buffer.find(_HEAD, max(line_start, len(buffer) - _LONGEST_LINE))
    while at >= 0:
        if complete:
            if _CLOSING_LINE.fullmatch(buffer, at):
                return at, True
        elif _could_grow_into_closing_line(buffer[at:]):
            return at, False
        at = buffer.find(_HEAD, at + 1)
    if not complete:
        for size in range(min(len(_HEAD) - 1, len(buffer) - line_start), 0, -1):
            if buffer.endswith(_HEAD[:size]):
                return len(buffer) - size, False
    return len(buffer), False


def closing_message(stderr: bytes) -> str | None:
    """The message of the ``level=fatal`` line that ends ``stderr``, if one does."""
    start, complete = holdback(stderr)
    if not complete:
        return None
    messages = fatal_messages(stderr[start:].decode(errors="replace"))
    return messages[-1] if messages else None


class ExecStderr:
    """``nerdctl exec``'s stderr: the process's part goes on, nerdctl's closing line is kept.

    An :class:`~pycri.streaming.streams.Output` for run_attached; ``sink``
    is the client's stderr (None: nothing is shown, as with a TTY, where
    all of it is nerdctl's). What could still be nerdctl's line is held:
    a complete one until more comes or :meth:`finish`, the start of one
    (nerdctl's line arrives whole unless a read cut it, and then the rest
    follows at once) for :data:`_RELEASE` seconds at most.
    """

    def __init__(self, sink: Output | None) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._held = b""
        self._tail = b""
        self._timer: threading.Timer | None = None
        #: counts writes, so that a timer armed for older data does nothing
        self._generation = 0

    def write(self, data: bytes) -> None:
        with self._lock:
            self._stop_timer()
            self._generation += 1
            buffer = self._held + data
            cut, complete = holdback(buffer)
            ready, self._held = buffer[:cut], buffer[cut:]
            self._tail = (self._tail + data)[-_TAIL:]
            if self._held and not complete:
                self._timer = threading.Timer(_RELEASE, self._release, (self._generation,))
                self._timer.daemon = True
                self._timer.start()
            self._send(ready)

    def _release(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                held, self._held = self._held, b""
                self._send(held)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Nothing to do: :meth:`finish` decides what the held line was."""

    def _send(self, data: bytes) -> None:
        # under the lock: output keeps its order whoever sends it
        if data and self._sink is not None:
            try:
                self._sink.write(data)
            except OSError:
                self._sink = None  # the client left: keep reading for the exit code

    @property
    def tail(self) -> str:
        """The end of everything nerdctl's stderr carried (for error messages)."""
        with self._lock:
            return self._tail.decode(errors="replace")

    def finish(self, returncode: int) -> str | None:
        """nerdctl's closing message when it failed with one; the rest of the output goes on."""
        with self._lock:
            self._stop_timer()
            self._generation += 1
            held, self._held = self._held, b""
            message = closing_message(self._tail) if returncode > 0 else None
            if message is None or not held.endswith(b"\n"):
                self._send(held)  # not nerdctl's (or, cut by a late read, already out)
            return message


def exec_stream(
    lookup: Lookup, cgroups: Cgroups, container_id: str, cmd: Sequence[str], io: StreamIO
) -> int:
    """``nerdctl exec [-i] [-t]`` wired to ``io``; a client that leaves stops what it started."""

    def stop(client_pid: int) -> None:
        # nerdctl dying does not stop the process it started: kill that first
        runc = lookup.runc(container_id)
        stop_exec(
            client_pid,
            runc.init_pid if runc is not None and runc.alive() else None,
            container_id,
            lambda: host.container_pids(cgroups, container_id, runc) if runc is not None else [],
        )

    return _run_exec(lookup.runner, container_id, cmd, io, on_cancel=stop)


def attach(lookup: Lookup, logs: LogFollowers, container_id: str, io: StreamIO) -> None:
    """The container's output from its json log, from now on; stdin is refused (NO_STDIN)."""
    data = lookup.inspect(container_id, CONTAINER_KIND)
    if not (data.get("State") or {}).get("Running"):
        raise FailedPreconditionError(
            f"container {container_id[:13]} is not running: cannot attach to it"
        )
    if io.stdin is not None:
        raise UnimplementedError(NO_STDIN)
    full_id = data["Id"]
    labels = convert.raw_labels(data)
    path = json_log_path(labels.get("nerdctl/state-dir", ""), full_id)
    parent = convert.decoded(data).extra.get("cgroup-parent", "")
    attach_log(path, logs.alive_check(full_id, parent), io)


def _run_exec(
    runner: NerdctlRunner,
    container_id: str,
    cmd: Sequence[str],
    io: StreamIO,
    on_cancel: Callable[[int], None] | None = None,
) -> int:
    """``nerdctl exec`` wired to ``io``; the process's exit code (see the module docstring)."""
    flags = (["-i"] if io.stdin is not None else []) + (["-t"] if io.tty else [])
    args = ["exec", *flags, container_id, *cmd]
    stderr = ExecStderr(None if io.tty else io.stderr)
    try:
        code = run_attached(
            runner.argv(args),
            io,
            env=runner.environment(),
            stderr=stderr,
            on_cancel=on_cancel,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as err:
        raise UnavailableError(
            f"cannot run nerdctl at {runner.binary!r} ({err.strerror or err}): {INSTALL_HINT}"
        ) from None
    message = stderr.finish(code)
    if code == 0:
        return 0
    if message is not None:
        found = _EXIT.fullmatch(message)
        if found:
            return int(found[1])
        if _NOT_RUNNING.search(message):
            raise FailedPreconditionError(
                f"container {container_id[:13]} is not running: cannot exec in it ({message})"
            )
        raise error_for(
            ["exec", container_id, *cmd], code, f"level=fatal msg={json.dumps(message)}"
        )
    if io.cancelled.is_set():
        return code  # nerdctl was stopped because the client left
    raise error_for(["exec", container_id, *cmd], code, stderr.tail)


@contextlib.contextmanager
def _frozen(pid: int) -> Iterator[None]:
    """SIGSTOP ``pid`` for the duration (so it cannot start what we are about to look for)."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop_exec(
    client_pid: int,
    init_pid: int | None,
    container_id: str,
    container_pids: Callable[[], Sequence[int]],
) -> None:
    """Kill what the ``nerdctl exec`` at ``client_pid`` started in the container.

    ``init_pid`` is the container's init (None: not running, so nothing to
    kill); ``container_pids`` lists the pids of the container's cgroup.
    On return nerdctl has exited, or will be stopped by the caller.
    """
    if init_pid is None:
        return
    with _frozen(client_pid):
        exec_id = host.exec_id_of_client(client_pid)
        bundle = host.task_bundle(init_pid, container_id)
        if exec_id is None or bundle is None:
            # no exec made yet: the caller stops nerdctl before it makes one
            with contextlib.suppress(ProcessLookupError):
                os.kill(client_pid, signal.SIGKILL)
            return
        pid_of: list[int] = []

        def started() -> bool:
            pid = host.exec_pid(bundle, exec_id)
            if pid is not None:
                pid_of.append(pid)
            return pid is not None

        if not _wait(started, _START_WAIT):
            # created, never started: nerdctl must not start it now
            with contextlib.suppress(ProcessLookupError):
                os.kill(client_pid, signal.SIGKILL)
            return
        pid, pids = pid_of[0], container_pids()
        # still in the container (its parent is runc at first, the shim later)
        if pid in pids and pid != init_pid:
            host.kill_pids({pid} | host.descendants(pid, pids))
            log.info("killed exec %s (pid %d) in %s: its client left", exec_id, pid, container_id)
    # nerdctl now sees the exit, deletes the exec and ends by itself
    if not _wait(lambda: not host.running(client_pid), _EXIT_WAIT):
        log.warning("nerdctl exec (pid %d) did not end after its process was killed", client_pid)


def attach_log(
    log_path: str,
    alive: Callable[[], bool],
    io: StreamIO,
) -> None:
    """Copy what the container logs from now on to ``io`` until it exits or the client leaves."""
    try:
        offset = os.stat(log_path).st_size
    except FileNotFoundError:
        offset = 0
    follow = json_log_source(log_path, alive, threading.Event(), offset=offset)
    newline = b"\r\n" if io.tty else b"\n"  # a terminal's raw mode does not add the \r
    for record in follow(None, io.cancelled):
        output = io.stdout if io.tty or record.stream == "stdout" else io.stderr
        if output is None:
            continue
        try:
            output.write(record.line if record.partial else record.line + newline)
        except OSError:
            return  # the client left


def json_log_path(state_dir: str, container_id: str) -> str:
    """Where nerdctl's json-file driver writes a container's log."""
    if not state_dir:
        raise CRIError(f"container {container_id[:13]} has no nerdctl state directory label")
    return str(Path(state_dir) / f"{container_id}-json.log")
