"""Run nerdctl: the one place that starts processes and maps their failures.

Every call is an argument list (never a shell), bounded by a timeout after
which the process group is killed and reaped, with stderr carried into the
error. Failures become :mod:`pycri.errors` exceptions here and nowhere
else. Each call is counted against the CRI RPC being served, so the cost of
every RPC in nerdctl processes can be logged and reported.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from pycri.errors import (
    CRIError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)

__all__ = [
    "BYSTANDER_RETRIES",
    "INSTALL_HINT",
    "CallCounter",
    "NerdctlRunner",
    "Result",
    "bystander_vanished",
    "error_for",
    "fatal_messages",
    "read_lines",
    "stop_process",
]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install nerdctl v1.7.7 (GOBIN=/usr/local/bin go install "
    "github.com/containerd/nerdctl/cmd/nerdctl@v1.7.7, or scripts/setup-runtimes.sh) "
    "or point the shim at it with --shim-option nerdctl=/path/to/nerdctl"
)

# logrus lines: time="..." level=fatal msg="..." (msg is a Go-quoted string)
_LOG_LINE = re.compile(r'level=(?P<level>fatal|error) msg=(?P<msg>"(?:[^"\\]|\\.)*"|\S+)')
_UNAVAILABLE = re.compile(
    r"cannot access containerd socket|failed to dial|connection refused"
    r"|connection error|transport is closing|no such file or directory.*containerd\.sock",
    re.IGNORECASE,
)
# Only messages about a missing *object*: "executable file not found in
# $PATH" must stay an ordinary error, never NOT_FOUND.
_NOT_FOUND = re.compile(
    r"no such (container|object|image)|image not available|: not found\b", re.IGNORECASE
)
# nerdctl refusing a value of the request before anything was created: its flag
# parser (pflag), its option parsers and checks (messages seen with nerdctl 1.7.7:
# tests/unit/test_nerdctl_errors.py), and containerd's errdefs class suffix
# ": invalid argument". A failure of the OCI runtime (runc) is the engine failing
# at its job, as containerd's own CRI reports it: never an argument refusal here.
_REFUSED = re.compile(
    r'^invalid argument ".*" for ".*" flag'
    r"|: invalid argument$"
    r"|^failed to parse (memory bytes|memory-swap bytes|device|volume options|option|label) "
    r"|^invalid (value|ip address|USER value|name|reference format)\b"
    r"|^failed to load networking flags: invalid "
    r"|^cannot load seccomp profile "
    r"|: no users found$"
    r"|^cannot use --cgroup-conf without cgroup v2"
)
_RUNTIME_FAILURE = re.compile(r"failed to create shim task|OCI runtime|runc (create|run) failed")
#: a process that ignores SIGTERM gets this long before SIGKILL
KILL_GRACE = 1.0


# nerdctl before 2.0 walks every container of the namespace in ``ps``,
# ``create`` and ``run``, and fails outright when one of them is removed
# meanwhile (containerd/nerdctl#3167, fixed upstream by #3192). An error
# about a container the command never named is such a bystander's: retry.
_VANISHED = re.compile(r'container "(?P<id>[0-9a-f]{64})" in namespace "[^"]*": not found')
BYSTANDER_RETRIES = 3


def bystander_vanished(args: Sequence[str], err: CRIError) -> bool:
    """Whether ``nerdctl args`` failed only because some other container went away."""
    match = _VANISHED.search(err.message)
    return match is not None and not any(match["id"] in arg for arg in args)


def _unquote(text: str) -> str:
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text.strip('"')
        return str(value)
    return text


def fatal_messages(stderr: str) -> list[str]:
    """The messages of nerdctl's ``level=fatal`` / ``level=error`` log lines."""
    return [_unquote(m["msg"]) for m in _LOG_LINE.finditer(stderr)]


def _refused(message: str) -> bool:
    """Whether a nerdctl error message is a refusal of an argument (see _REFUSED)."""
    message = message.strip()
    return _REFUSED.search(message) is not None and not _RUNTIME_FAILURE.search(message)


def error_for(argv: Sequence[str], returncode: int, stderr: str) -> CRIError:
    """The pycri error for a failed nerdctl call (the single error mapping)."""
    messages = fatal_messages(stderr)
    detail = "; ".join(m.replace("\n", " ") for m in messages) or stderr.strip() or "no output"
    command = " ".join(argv[:3])
    if _UNAVAILABLE.search(detail):
        return UnavailableError(
            f"containerd is not reachable ({command}: {detail}); start containerd "
            "(e.g. scripts/setup-runtimes.sh) or set --shim-option address=<socket>"
        )
    if _NOT_FOUND.search(detail):
        return NotFoundError(detail)
    if any(_refused(m) for m in messages):
        return InvalidArgumentError(f"nerdctl refused {command}: {detail}")
    return CRIError(f"{command} failed (exit {returncode}): {detail}")


@dataclass
class Result:
    """What a finished nerdctl call printed."""

    argv: list[str]
    returncode: int
    out: bytes
    err: bytes

    @property
    def stdout(self) -> str:
        return self.out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.stdout)

    def json_lines(self) -> list[dict[str, Any]]:
        """``--format json`` lists: one JSON object per line."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@dataclass
class _RpcTally:
    rpcs: int = 0
    processes: int = 0
    seconds: float = 0.0


@dataclass
class _Current:
    rpc: str = "background"
    processes: int = 0
    seconds: float = 0.0


class CallCounter:
    """nerdctl processes per CRI RPC: per thread for the RPC in flight, and totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, _RpcTally] = {}
        self._local = threading.local()

    def _current(self) -> _Current:
        current: _Current | None = getattr(self._local, "current", None)
        if current is None:
            current = _Current()
            self._local.current = current
        return current

    def begin(self, rpc: str) -> None:
        """A new RPC starts on this thread."""
        self.finish()  # in case the last one ended without after_rpc
        self._local.current = _Current(rpc=rpc)
        with self._lock:
            self._totals.setdefault(rpc, _RpcTally()).rpcs += 1

    def finish(self) -> None:
        """The RPC on this thread is done: log what it cost."""
        current: _Current | None = getattr(self._local, "current", None)
        if current is not None and current.rpc != "background":
            log.debug(
                "%s used %d nerdctl process(es), %.1f ms in nerdctl",
                current.rpc,
                current.processes,
                current.seconds * 1000,
            )
        self._local.current = None

    def record(self, seconds: float) -> tuple[str, int]:
        """Count one process against this thread's RPC; return (rpc, its count)."""
        current = self._current()
        current.processes += 1
        current.seconds += seconds
        with self._lock:
            tally = self._totals.setdefault(current.rpc, _RpcTally())
            tally.processes += 1
            tally.seconds += seconds
        return current.rpc, current.processes

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per RPC: calls, nerdctl processes, processes per call, seconds in nerdctl."""
        with self._lock:
            return {
                rpc: {
                    "rpcs": t.rpcs,
                    "processes": t.processes,
                    "per_rpc": round(t.processes / t.rpcs, 2) if t.rpcs else float(t.processes),
                    "seconds": round(t.seconds, 3),
                }
                for rpc, t in sorted(self._totals.items())
            }


OnTimeout = Callable[[], None]


class NerdctlRunner:
    """Runs ``nerdctl <global flags> <args>`` with a timeout and one error mapping."""

    def __init__(
        self,
        binary: str,
        global_args: Sequence[str],
        timeout: float,
        env: dict[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.global_args = list(global_args)
        self.timeout = timeout
        self.env = env
        self.counter = CallCounter()

    def argv(self, args: Sequence[str]) -> list[str]:
        return [self.binary, *self.global_args, *args]

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        on_timeout: OnTimeout | None = None,
        soft_kill: bool = False,
    ) -> Result:
        """Run nerdctl; raise the mapped error unless ``check`` is False.

        On timeout ``on_timeout`` runs first (exec uses it to kill what it
        started inside the container), then the process group gets SIGTERM
        when ``soft_kill`` (nerdctl forwards it) or straight SIGKILL, and
        is always reaped before DeadlineExceededError is raised.
        """
        argv = self.argv(args)
        limit = self.timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.environment(env),
                start_new_session=True,  # so a timeout can kill its whole group
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as err:
            raise UnavailableError(
                f"cannot run nerdctl at {self.binary!r} ({err.strerror or err}): {INSTALL_HINT}"
            ) from None
        try:
            out, err_out = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            self._kill(process, on_timeout, soft_kill)
            rpc, _ = self.counter.record(time.monotonic() - started)
            raise DeadlineExceededError(
                f"nerdctl {' '.join(args[:2])} did not finish within {limit:g}s and was "
                f"killed (RPC {rpc}); containerd may be overloaded or hung"
            ) from None
        except BaseException:
            self._kill(process, None, False)
            raise
        elapsed = time.monotonic() - started
        rpc, count = self.counter.record(elapsed)
        result = Result(argv, process.returncode, out, err_out)
        log.debug(
            "[%s #%d] %s -> exit %d in %.1f ms",
            rpc,
            count,
            " ".join(argv[len(self.global_args) + 1 :])[:200],
            result.returncode,
            elapsed * 1000,
        )
        if check and result.returncode != 0:
            raise error_for(list(args), result.returncode, result.stderr)
        return result

    def run_despite_bystanders(
        self, args: Sequence[str], before_retry: Callable[[], object] | None = None
    ) -> Result:
        """``run``, again when another container vanished under nerdctl (see above).

        ``before_retry`` undoes what a failed attempt may have left behind.
        """
        attempt = 0
        while True:
            try:
                return self.run(args)
            except CRIError as err:
                if attempt == BYSTANDER_RETRIES or not bystander_vanished(args, err):
                    raise
                attempt += 1
                log.info("nerdctl %s: %s; retrying (%d)", args[0], err.message, attempt)
                if before_retry is not None:
                    before_retry()

    def json(self, args: Sequence[str], **kwargs: Any) -> Any:
        return self.run(args, **kwargs).json()

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str] | None:
        """The environment nerdctl runs with (None: this process's own)."""
        if self.env is None and extra is None:
            return None
        merged = dict(os.environ)
        merged.update(self.env or {})
        merged.update(extra or {})
        return merged

    @staticmethod
    def _kill(
        process: subprocess.Popen[bytes], on_timeout: OnTimeout | None, soft_kill: bool
    ) -> None:
        if on_timeout is not None:
            try:
                on_timeout()
            except Exception:
                log.exception("cleaning up after a timed-out nerdctl call failed")
        if soft_kill:
            _signal_group(process, signal.SIGTERM)
            try:
                process.communicate(timeout=KILL_GRACE)
                return
            except subprocess.TimeoutExpired:
                pass
        _signal_group(process, signal.SIGKILL)
        process.communicate()  # reap: no zombie


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def read_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The lines of a long-running process's output, until it ends or is closed."""
    try:
        yield from iter(stream.readline, b"")
    except (OSError, ValueError):
        return


def stop_process(process: subprocess.Popen[bytes], what: str) -> None:
    """Kill a long-running process (if it still runs) and reap it."""
    if process.poll() is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %d) did not exit", what, process.pid)
