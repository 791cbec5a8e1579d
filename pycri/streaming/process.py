"""Run a host command wired to a streaming session, through a pty when a TTY was asked.

For shims that reach containers through a CLI: the nerdctl shim runs
``nerdctl exec -i [-t] CONTAINER CMD...`` with :func:`run_attached` and
returns its exit code. Resizes set the pty's window size and send the
child ``SIGWINCH`` (it has no controlling terminal, so the kernel would
not), which is how ``nerdctl``/``docker`` learn to resize the remote
terminal.

Two hooks serve CLIs that talk about themselves on stderr or leave work
behind when they die: ``stderr`` takes the command's own stderr (instead
of ``io.stderr``, or of the terminal with a TTY) so the caller can filter
or parse it, and ``on_cancel`` runs before the command is stopped because
the client left.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
import tty
from collections.abc import Callable, Mapping, Sequence

from pycri.streaming.pump import copy_input, type_eof
from pycri.streaming.streams import Output, StreamIO, TerminalSize

__all__ = ["OnCancel", "run_attached", "set_window_size"]

log = logging.getLogger(__name__)

#: called with the command's pid once the client has left, before the command is stopped
OnCancel = Callable[[int], None]

#: after the client left, how long the command gets between SIGTERM and SIGKILL
KILL_GRACE = 2.0
POLL = 0.25
CHUNK = 64 * 1024


def set_window_size(fd: int, size: TerminalSize) -> None:
    """TIOCSWINSZ: rows, columns (pixels unused)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def _copy_output(read_fd: int, output: Output | None) -> threading.Thread:
    def run() -> None:
        sink = output
        while True:
            try:
                data = os.read(read_fd, CHUNK)
            except OSError:
                return  # EIO: the pty's last slave closed
            if not data:
                return
            if sink is not None:
                try:
                    sink.write(data)
                except OSError:
                    sink = None  # the client left: keep draining so the child never blocks

    thread = threading.Thread(target=run, name="pycri-output", daemon=True)
    thread.start()
    return thread


def _watch(
    process: subprocess.Popen[bytes],
    io: StreamIO,
    master: int | None,
    on_cancel: OnCancel | None,
) -> None:
    """Until the process ends: apply resizes, and stop it if the client leaves."""

    def run() -> None:
        while process.poll() is None:
            if io.cancelled.is_set():
                if on_cancel is not None:
                    try:
                        on_cancel(process.pid)
                    except Exception:
                        log.exception("cleaning up after a client that left failed")
                process.terminate()
                try:
                    process.wait(KILL_GRACE)
                except subprocess.TimeoutExpired:
                    process.kill()
                return
            if io.resize is None or master is None or io.resize.closed:
                io.cancelled.wait(POLL)
                continue
            size = io.resize.get(timeout=POLL)
            if size is not None:
                with contextlib.suppress(OSError):
                    set_window_size(master, size)
                    process.send_signal(signal.SIGWINCH)

    threading.Thread(target=run, name="pycri-watch", daemon=True).start()


def run_attached(
    argv: Sequence[str],
    io: StreamIO,
    *,
    env: Mapping[str, str] | None = None,
    stderr: Output | None = None,
    on_cancel: OnCancel | None = None,
) -> int:
    """Run ``argv`` with ``io`` as its stdio; its exit code (128+N when killed by signal N).

    ``stderr``, when given, receives everything the command writes to its
    stderr, in place of ``io.stderr`` (or, with ``io.tty``, of the
    terminal), all of it by the time this returns. ``on_cancel`` is called
    with the command's pid when the client has left, before the command
    gets SIGTERM.
    """
    if io.tty:
        return _run_in_pty(argv, io, env, stderr, on_cancel)
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if io.stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    copiers = [
        _copy_output(process.stdout.fileno(), io.stdout),
        _copy_output(process.stderr.fileno(), io.stderr if stderr is None else stderr),
    ]
    if io.stdin is not None and process.stdin is not None:
        stdin = process.stdin

        def feed(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        copy_input(io.stdin, feed, stdin.close)
    _watch(process, io, None, on_cancel)
    code = process.wait()
    if io.stdin is not None:
        io.stdin.close()  # nobody reads it any more: ends its copier
    for copier in copiers:
        copier.join()
    process.stdout.close()
    process.stderr.close()
    return _exit_code(code)


def _run_in_pty(
    argv: Sequence[str],
    io: StreamIO,
    env: Mapping[str, str] | None,
    stderr: Output | None,
    on_cancel: OnCancel | None,
) -> int:
    master, slave = pty.openpty()
    # The command forwards to a terminal in the container, which echoes,
    # edits lines and turns \n into \r\n: ours must pass bytes unchanged.
    # A CLI makes it raw itself, but containerd/console's raw mode (nerdctl's)
    # turns OPOST back on, and with ONLCR that doubled every \r: no output flag.
    tty.setraw(slave)
    mode = termios.tcgetattr(slave)
    mode[1] = 0  # oflag
    termios.tcsetattr(slave, termios.TCSANOW, mode)
    if io.resize is not None and io.resize.latest is not None:
        set_window_size(master, io.resize.latest)
    try:
        # a session of its own: the client's ^C reaches it through the pty, not us
        process = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave if stderr is None else subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(slave)
    copier = _copy_output(master, io.stdout)
    errors = None
    if stderr is not None and process.stderr is not None:
        errors = _copy_output(process.stderr.fileno(), stderr)
    ended = threading.Event()
    typist = None
    if io.stdin is not None:
        write = functools.partial(_write_all, master)
        typist = copy_input(io.stdin, write, lambda: type_eof(write, ended))
    _watch(process, io, master, on_cancel)
    code = process.wait()
    ended.set()
    if typist is not None and io.stdin is not None:
        io.stdin.close()
        typist.join(5)
    if errors is not None and process.stderr is not None:
        errors.join(5)  # bounded: something the command left running may hold the pipe
        process.stderr.close()
    copier.join(5)
    if typist is not None and typist.is_alive():
        # never closed under a writer: the number could be reused by then
        log.warning("a write to the terminal of %s is stuck: its pty stays open", argv[0])
    else:
        os.close(master)
    return _exit_code(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code
