"""Exec, Attach and PortForward in the fake runtime, on top of its simulated processes.

* Exec runs the command as a simulated process wired to the client: a
  live :class:`~pycri_shims.fake.stdio.Stdin`, and with a TTY a
  :class:`~pycri_shims.fake.stdio.Terminal`
  (echo, line editing, ``^C``, ``stty size`` after a resize). ``sh``
  without arguments is then an interactive shell with a ``/ # `` prompt.
* A container's main process writes through a :class:`Console`: its log,
  plus whoever is attached; a container created with ``stdin`` reads what
  attached clients type (closed after the first one leaves with
  ``stdin_once``).
* PortForward connects to a port that a simulated server (``nginx``,
  ``httpd -p``, ``nc -l``...) listens on in the pod's
  :class:`~pycri_shims.fake.network.FakeNetwork`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence

from pycri.api import api_pb2 as cri
from pycri.errors import FailedPreconditionError, InvalidArgumentError
from pycri.streaming.pump import copy_input, splice
from pycri.streaming.streams import Output, PortConnection, StreamIO
from pycri_shims.fake.execsync import exec_slot
from pycri_shims.fake.processes import KILL_WAIT, SimulatedProcess
from pycri_shims.fake.sh.context import ProcessContext
from pycri_shims.fake.stdio import Stdin, Terminal
from pycri_shims.fake.store import FakeStore

__all__ = ["Console", "attach", "attached", "exec_stream", "port_forward", "run_exec"]

Writer = Callable[[bytes], None]
POLL = 0.25


def _to_client(output: Output | None) -> Writer:
    """A writer to the client that drops output once the client is gone (as a hung-up pty)."""

    def write(data: bytes) -> None:
        if output is not None:
            with contextlib.suppress(OSError):
                output.write(data)

    return write


def _follow_resizes(io: StreamIO, terminal: Terminal, done: threading.Event) -> None:
    def run() -> None:
        while not done.is_set() and io.resize is not None and not io.resize.closed:
            size = io.resize.get(timeout=POLL)
            if size is not None:
                terminal.resize(size.width, size.height)

    threading.Thread(target=run, name="pycri-fake-resize", daemon=True).start()


def run_exec(
    cmd: Sequence[str],
    context: ProcessContext,
    pid: int,
    io: StreamIO,
    *,
    name: str,
    started: Callable[[SimulatedProcess], None],
) -> int:
    """Run ``cmd`` wired to ``io`` until it exits (or the client leaves: then it is killed)."""
    stdin: bytes | Stdin = Stdin() if io.stdin is not None else b""
    out, err = _to_client(io.stdout), _to_client(io.stderr)
    terminal = None
    if io.tty:
        live = stdin if isinstance(stdin, Stdin) else Stdin()
        terminal = Terminal(live, out)
        if io.resize is not None and io.resize.latest is not None:
            terminal.resize(io.resize.latest.width, io.resize.latest.height)
        out = err = terminal.output
    process = SimulatedProcess(
        list(cmd), context.for_exec(pid, terminal), stdout=out, stderr=err, stdin=stdin, name=name
    )
    done = threading.Event()
    if terminal is not None:
        terminal.interrupt = process.interrupt
        _follow_resizes(io, terminal, done)
    if io.stdin is not None and isinstance(stdin, Stdin):
        if terminal is not None:
            copy_input(io.stdin, terminal.input, terminal.hang_up)
        else:
            copy_input(io.stdin, stdin.feed, stdin.close)
    started(process)
    process.start()
    try:
        while not process.wait(POLL):
            if io.cancelled.is_set():
                process.kill()  # the client left: what containerd does with an exec
                process.wait(KILL_WAIT)
                break
    finally:
        done.set()
        process.join(KILL_WAIT)
        if isinstance(stdin, Stdin):
            stdin.close()
        if io.stdin is not None:
            io.stdin.close()  # nobody reads it any more: ends its copier
    return process.result.exit_code if process.result is not None else 137


class Console:
    """A container's stdio: its log, attached clients, and the stdin they feed."""

    def __init__(
        self, log_out: Writer, log_err: Writer, *, stdin: bool, tty: bool, stdin_once: bool
    ) -> None:
        self._log_out, self._log_err = log_out, log_err
        self._lock = threading.Lock()
        self._clients: list[tuple[Writer, Writer | None]] = []
        self.stdin = Stdin() if stdin else None
        self.stdin_once = stdin_once
        self.terminal = Terminal(self.stdin or Stdin(), self._screen) if tty else None
        self.exited = threading.Event()

    @property
    def attached(self) -> int:
        """How many attach sessions follow this console now."""
        with self._lock:
            return len(self._clients)

    @property
    def process_stdin(self) -> bytes | Stdin | None:
        return self.stdin if self.stdin is not None else b""

    def _screen(self, data: bytes) -> None:
        self._log_out(data)
        with self._lock:
            clients = list(self._clients)
        for out, _ in clients:
            out(data)

    def stdout(self, data: bytes) -> None:
        if self.terminal is not None:
            self.terminal.output(data)
        else:
            self._screen(data)

    def stderr(self, data: bytes) -> None:
        if self.terminal is not None:
            self.terminal.output(data)  # a terminal has one output stream
            return
        self._log_err(data)
        with self._lock:
            clients = list(self._clients)
        for _, err in clients:
            if err is not None:
                err(data)

    def attach(self, io: StreamIO) -> None:
        """Stream output to ``io`` (and its stdin in) until the process exits or it leaves."""
        client = (_to_client(io.stdout), _to_client(io.stderr) if io.stderr else None)
        with self._lock:
            self._clients.append(client)
        done = threading.Event()
        if self.terminal is not None and io.resize is not None:
            _follow_resizes(io, self.terminal, done)
        if io.stdin is not None and self.stdin is not None:
            feed = self.terminal.input if self.terminal is not None else self.stdin.feed
            copy_input(io.stdin, feed, self.stdin.close if self.stdin_once else None)
        try:
            while not self.exited.wait(POLL) and not io.cancelled.is_set():
                pass
        finally:
            done.set()
            if io.stdin is not None:
                io.stdin.close()  # the session is over: ends its copier
            with self._lock:
                self._clients.remove(client)


# -- the CRI calls -------------------------------------------------------------------


def exec_stream(store: FakeStore, container_id: str, cmd: Sequence[str], io: StreamIO) -> int:
    """Exec: run ``cmd`` in the container wired to the client; its exit code."""
    if not cmd:
        raise InvalidArgumentError("cmd is required")
    with store.lock:
        record, pid = exec_slot(store, container_id)
    started: list[SimulatedProcess] = []

    def register(process: SimulatedProcess) -> None:
        # killed with the container, like the execs of ExecSync
        with store.lock:
            record.execs.add(process)
            gone = record.state != cri.CONTAINER_RUNNING
        started.append(process)
        if gone:  # the container exited meanwhile
            process.kill()

    try:
        return run_exec(
            cmd,
            record.context,
            pid,
            io,
            name=f"pycri-fake-exec-{container_id[:12]}",
            started=register,
        )
    finally:
        with store.lock:
            record.execs.difference_update(started)


def attach(store: FakeStore, container_id: str, io: StreamIO) -> None:
    """Attach: follow the running container's console until it exits or the client leaves."""
    with store.lock:
        record = store.container(container_id)
        if record.state != cri.CONTAINER_RUNNING or record.console is None:
            raise FailedPreconditionError(
                f"container {container_id[:13]} is not running: cannot attach to it"
            )
        console = record.console
    console.attach(io)


def attached(store: FakeStore, container_id: str) -> int:
    """How many attach sessions follow the container now (for tests to sync on)."""
    with store.lock:
        console = store.container(container_id).console
    return console.attached if console is not None else 0


def port_forward(store: FakeStore, pod_id: str, port: int, connection: PortConnection) -> None:
    """PortForward: connect to ``port`` in the ready pod's network."""
    with store.lock:
        sandbox = store.sandbox(pod_id)
        if sandbox.state != cri.SANDBOX_READY or sandbox.network is None:
            raise FailedPreconditionError(f"pod sandbox {pod_id[:13]} is not ready")
        network = sandbox.network
    splice(connection, network.connect(port))
