"""``attach``, and the terminal plumbing ``exec`` shares with it.

A session copies this process's stdin to the container and its output
back. With ``-t`` the local terminal goes to raw mode (the remote pty does
echo and line editing) and window-size changes (SIGWINCH) are sent on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from types import FrameType
from typing import Any

import click

from pycri.api import api_pb2 as cri
from pycri.cli.errors import CLIError
from pycri.cli.session import CrictlSession
from pycri.errors import UnimplementedError
from pycri.streaming.client import RemoteCommand, StreamError
from pycri.streaming.streams import TerminalSize

__all__ = ["COMMANDS", "run_session", "streaming_hint"]

TRANSPORT_HELP = "Accepted for crictl compatibility; pycrictl always uses WebSocket."


def streaming_hint(err: UnimplementedError) -> CLIError:
    return CLIError(
        f"{err.rpc or 'the RPC'}: {err.message}. The runtime serves no streaming URL; "
        "to run a command without it use `pycrictl exec -s CONTAINER-ID COMMAND...` (ExecSync)"
    )


@contextlib.contextmanager
def _raw_terminal(fd: int) -> Iterator[None]:
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _size(fd: int) -> TerminalSize | None:
    try:
        columns, lines = os.get_terminal_size(fd)
    except OSError:
        return None
    return TerminalSize(columns, lines)


def _pump_stdin(fd: int, session: RemoteCommand) -> None:
    def run() -> None:
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                session.close_stdin()
                return
            session.send_stdin(data)

    threading.Thread(target=run, name="pycrictl-stdin", daemon=True).start()


def _write(stream: Any) -> Any:
    def write(data: bytes) -> None:
        stream.write(data)
        stream.flush()

    return write


def run_session(url: str, *, stdin: bool, tty_mode: bool) -> int:
    """Stream one Exec/Attach URL with this terminal; the remote exit code."""
    stdin_fd = sys.stdin.fileno() if stdin else -1
    if tty_mode and not (stdin and os.isatty(stdin_fd)):
        raise CLIError("input is not a terminal: -t needs -i and a terminal on stdin")
    stdout = _write(sys.stdout.buffer)
    stderr = _write(sys.stderr.buffer)
    try:
        with RemoteCommand(url) as session:
            if not tty_mode:
                if stdin:
                    _pump_stdin(stdin_fd, session)
                return session.run(stdout, stderr)
            size = _size(stdin_fd)
            if size is not None:
                session.resize(size)
            resized, done = threading.Event(), threading.Event()

            def on_winch(signum: int, frame: FrameType | None) -> None:
                # the handler interrupts the main thread, maybe inside the websocket's
                # locks: it only flags the change, a thread sends it
                resized.set()

            def send_sizes() -> None:
                while not done.is_set():
                    if resized.wait(0.2):
                        resized.clear()
                        if (new := _size(stdin_fd)) is not None:
                            session.resize(new)

            sender = threading.Thread(target=send_sizes, name="pycrictl-resize", daemon=True)
            sender.start()
            previous = signal.signal(signal.SIGWINCH, on_winch)
            try:
                with _raw_terminal(stdin_fd):
                    _pump_stdin(stdin_fd, session)
                    return session.run(stdout)
            finally:
                signal.signal(signal.SIGWINCH, previous)
                done.set()
                sender.join(1)
    except StreamError as err:
        raise CLIError(str(err)) from None


@click.command("attach")
@click.option("-i", "--stdin", "stdin", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-r", "--transport", type=click.Choice(["spdy", "websocket"]), help=TRANSPORT_HELP)
@click.argument("container_id", metavar="CONTAINER-ID")
@click.pass_context
def attach_command(
    ctx: click.Context, stdin: bool, tty: bool, transport: str | None, container_id: str
) -> None:
    """Attach to a running container."""
    session = ctx.find_object(CrictlSession)
    assert session is not None
    request = cri.AttachRequest(
        container_id=container_id, stdin=stdin, tty=tty, stdout=True, stderr=not tty
    )
    try:
        response = session.rpc(session.client.attach, request)
    except UnimplementedError as err:
        raise streaming_hint(err) from None
    run_session(response.url, stdin=stdin, tty_mode=tty)


COMMANDS = [attach_command]
