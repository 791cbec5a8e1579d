"""Simulated processes: the fake shell (:mod:`pycri_shims.fake.sh`) running an argv in a thread.

A process is signalled like a real one: SIGTERM ends it promptly with 143
(``pause`` and server daemons exit 0, as the real ones do), SIGKILL with
137, and :meth:`SimulatedProcess.crash` with any code and reason (an OOM
kill, say). Its output goes to the writers it was given, as it happens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pycri_shims.fake.sh.commands import COMMANDS, is_runnable
from pycri_shims.fake.sh.context import IO, ProcessContext, Writer
from pycri_shims.fake.sh.control import SIGKILL, SIGTERM, Control, Interrupted, Terminated
from pycri_shims.fake.sh.interpreter import Shell
from pycri_shims.fake.stdio import Stdin

__all__ = [
    "KILL_WAIT",
    "CompletedProcess",
    "OutputCapture",
    "ProcessResult",
    "SimulatedProcess",
    "run",
]

log = logging.getLogger(__name__)

#: what runtimes cap each exec stream at
EXEC_OUTPUT_LIMIT = 16 * 1024 * 1024
#: how long a killed simulated process may take to unwind (it is normally instant)
KILL_WAIT = 5.0


@dataclass(frozen=True)
class ProcessResult:
    """How a process ended; ``reason`` is set only when something else decided it."""

    exit_code: int
    reason: str | None = None
    message: str = ""


@dataclass(frozen=True)
class CompletedProcess:
    exit_code: int
    stdout: bytes
    stderr: bytes


class OutputCapture:
    """A bounded, thread-safe output buffer (for ExecSync)."""

    def __init__(self, limit: int = EXEC_OUTPUT_LIMIT) -> None:
        self._lock = threading.Lock()
        self._data = bytearray()
        self.limit = limit
        self.truncated = False

    def write(self, data: bytes) -> None:
        with self._lock:
            room = self.limit - len(self._data)
            if len(data) > room:
                self.truncated = True
                data = data[: max(room, 0)]
            self._data += data

    @property
    def value(self) -> bytes:
        with self._lock:
            return bytes(self._data)


def _discard(data: bytes) -> None:
    """Output nobody reads."""


class SimulatedProcess:
    """``argv`` run by the fake shell in a daemon thread."""

    def __init__(
        self,
        argv: Sequence[str],
        context: ProcessContext | None = None,
        *,
        stdout: Writer = _discard,
        stderr: Writer = _discard,
        stdin: bytes | Stdin | None = b"",
        name: str = "pycri-fake-process",
        on_exit: Callable[[ProcessResult], None] | None = None,
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        self.argv = list(argv)
        self.context = context or ProcessContext()
        self.control = Control()
        self._io = IO(stdout, stderr, stdin)
        self._on_exit = on_exit
        self._done = threading.Event()
        self._crash: tuple[str, str] | None = None
        self.result: ProcessResult | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def pid(self) -> int:
        return self.context.pid

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._done.is_set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            code = self._main()
        except Exception:  # a bug in the fake must end the process, not hang it
            log.exception("simulated process %s failed", self.argv)
            self._io.err(b"pycri fake: internal error in the simulated process\n")
            code = 255
        reason, message = None, ""
        if self._crash is not None and code == self.control.forced_code:
            reason, message = self._crash  # the crash, not a normal exit, ended it
        self.result = ProcessResult(code, reason, message)
        try:
            if self._on_exit is not None:
                self._on_exit(self.result)
        finally:
            self._done.set()

    def _main(self) -> int:
        program = self.argv[0]
        if not is_runnable(program):
            self._io.err(
                f'exec failed: unable to start container process: exec: "{program}": '
                "executable file not found in $PATH\n".encode()
            )
            return 127
        shell = Shell(self.context, self.control, commands=COMMANDS, name="sh")
        try:
            return shell.run_argv(self.argv, self._io)
        except Terminated as signalled:
            return signalled.exit_code
        except Interrupted:
            return 130  # ^C on its terminal: SIGINT

    # -- signals -------------------------------------------------------------

    def signal(self, signum: int) -> None:
        self.control.send(signum)

    def terminate(self) -> None:
        self.control.send(SIGTERM)

    def kill(self) -> None:
        self.control.send(SIGKILL)

    def interrupt(self) -> None:
        """``^C`` on the process's terminal."""
        self.control.interrupt()

    def crash(self, exit_code: int = 137, reason: str = "OOMKilled", message: str = "") -> None:
        """End the process now with ``exit_code`` and ``reason`` (an OOM kill by default)."""
        if self._crash is None and not self._done.is_set():
            self._crash = (reason, message)
        self.control.send(SIGKILL, exit_code=exit_code)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the process (and its exit callback); True when it has ended."""
        return self._done.wait(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread itself to end (after ``wait``)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)


def run(
    argv: Sequence[str],
    context: ProcessContext | None = None,
    *,
    stdin: bytes | None = b"",
    timeout: float | None = None,
) -> CompletedProcess:
    """Run ``argv`` to completion and capture its output; TimeoutError after ``timeout`` s."""
    out, err = OutputCapture(), OutputCapture()
    process = SimulatedProcess(argv, context, stdout=out.write, stderr=err.write, stdin=stdin)
    process.start()
    if not process.wait(timeout):
        process.kill()
        process.wait()
        process.join()
        raise TimeoutError(f"{argv!r} did not finish within {timeout} s")
    process.join()
    assert process.result is not None
    return CompletedProcess(process.result.exit_code, out.value, err.value)
