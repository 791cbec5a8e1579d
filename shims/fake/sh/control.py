"""How control leaves a running command: simulated signals and the shell's own unwinding.

:class:`Control` delivers signals to one simulated process (thread safe);
:class:`Terminated` and :class:`Interrupted` unwind it when one arrives.
:class:`ExitShell`, :class:`BreakLoop`, :class:`ContinueLoop` and
:class:`ExpansionError` are how ``exit``, ``break``, ``continue`` and a failed
expansion unwind the interpreter to the level that handles them.
"""

from __future__ import annotations

import threading

__all__ = [
    "SIGKILL",
    "SIGTERM",
    "BreakLoop",
    "ContinueLoop",
    "Control",
    "ExitShell",
    "ExpansionError",
    "Interrupted",
    "Terminated",
]

SIGKILL = 9
SIGTERM = 15


class Terminated(Exception):
    """A signal ended the process; unwinds every shell level."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


class Interrupted(Exception):
    """``^C`` on the process's terminal (SIGINT): ends the foreground command, not a shell."""


class ExitShell(Exception):
    """``exit`` (or ``exec``): ends the shell level that runs the script."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class BreakLoop(Exception):
    """``break``: ends the innermost loop."""


class ContinueLoop(Exception):
    """``continue``: starts the next round of the innermost loop."""


class ExpansionError(Exception):
    """A word cannot be expanded (``${X:?}``, a bad redirection, bad arithmetic)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Control:
    """Delivers simulated signals to a running shell; thread safe."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._interrupted = False
        self.signum: int | None = None
        self.forced_code: int | None = None

    def send(self, signum: int, exit_code: int | None = None) -> None:
        """Signal the process; ``exit_code`` overrides ``128 + signum`` (crashes)."""
        with self._lock:
            if self.signum != SIGKILL and self.forced_code is None:
                self.signum = signum
                self.forced_code = exit_code
        self._event.set()

    def interrupt(self) -> None:
        """SIGINT from the terminal: the running command raises :class:`Interrupted`."""
        with self._lock:
            if self.signum is None:
                self._interrupted = True
                self._event.set()

    @property
    def signalled(self) -> bool:
        return self._event.is_set() and self.signum is not None  # ^C is not a signal here

    @property
    def graceful(self) -> bool:
        """A plain SIGTERM, which pause and daemons answer with a clean exit."""
        return self.signum == SIGTERM and self.forced_code is None

    def exit_code(self) -> int:
        if self.forced_code is not None:
            return self.forced_code
        return 128 + (self.signum or SIGKILL)

    def _raise(self) -> None:
        with self._lock:
            if self.signum is None and self._interrupted:
                self._interrupted = False
                self._event.clear()
                raise Interrupted
        raise Terminated(self.exit_code())

    def check(self) -> None:
        if self._event.is_set():
            self._raise()

    def sleep(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: until signalled); raise Terminated when signalled."""
        if self._event.wait(seconds):
            self._raise()

    def acknowledge(self) -> None:
        """Let a trap handler run after SIGTERM; SIGKILL still ends it."""
        with self._lock:
            if self.graceful:
                self._event.clear()
