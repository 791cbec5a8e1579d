"""A tiny sh that the fake runtime's simulated processes run: the interpreter.

Enough of POSIX sh for container commands to mean something: ``echo hi``
prints ``hi``, ``sleep 5`` takes five seconds, ``sh -c 'exit 3'`` exits 3.

Supported: ``;`` ``&&`` ``||`` ``|`` ``!`` and newlines; ``while``/``until``,
``for``, ``if``/``elif``/``else``, ``( ... )``, ``{ ...; }``; ``break`` and
``continue``; quoting (single, double, backslash); ``$VAR`` ``${VAR}``
``${VAR:-x}`` ``${#VAR}`` ``$?`` ``$$`` ``$0..$9`` ``$#`` ``$@``; ``$(...)``,
backticks and ``$((...))``; redirections ``>`` ``>>`` ``<`` ``2>&1`` ``>&2``
``&>`` to ``/dev/null``, ``/dev/stderr`` or files of an in-memory filesystem;
``set -e``; ``trap ACTION TERM|EXIT``.
A trailing ``&`` runs the command in the foreground (there is no job control).

Commands are builtins (``echo printf sleep exit cat env hostname date test
grep head wc seq ...``), a few long-running "daemons" (``nginx``,
``redis-server``... run until stopped), ``/pause`` and nested shells. Any
other command is ``sh: NAME: not found`` with status 127.

The shell is three modules: :mod:`.shell_syntax` (lexer, syntax tree and
parser), this one (the :class:`Shell` that expands words and runs the tree,
arithmetic, signals through :class:`Control`, the process's
:class:`ProcessContext`, :class:`IO` and :class:`FakeFS`), and
:mod:`.shell_builtins` (the builtin commands and the :func:`builtin` decorator
that registers them, which the package imports so the table is full before a
shell runs).
"""

from __future__ import annotations

import ast
import dataclasses
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from .shell_syntax import (
    _NAME,
    AndOr,
    Arith,
    CmdSub,
    ForLoop,
    Group,
    IfNode,
    Lit,
    Loop,
    Node,
    Param,
    Pipeline,
    Redir,
    Seq,
    ShellSyntaxError,
    Simple,
    Word,
    _Lexer,
    parse,
)
from .stdio import Stdin, Terminal

if TYPE_CHECKING:
    from .network import FakeNetwork

__all__ = [
    "IO",
    "SHELLS",
    "SIGKILL",
    "SIGTERM",
    "Control",
    "FakeFS",
    "Interrupted",
    "ProcessContext",
    "ReadOnlyFileSystem",
    "Shell",
    "Terminated",
    "is_runnable",
]

SIGKILL = 9
SIGTERM = 15

Writer = Callable[[bytes], None]

SHELLS = frozenset({"sh", "ash", "bash", "dash"})

# Long-running servers some images run: a start-up line, then serve until stopped.
# They shut down cleanly on SIGTERM (exit 0), like the real ones.
DAEMONS: dict[str, tuple[str, ...]] = {
    "nginx": ("nginx: [notice] start worker processes (pycri fake)",),
    "httpd-foreground": ("httpd: resuming normal operations (pycri fake)",),
    "httpd": ("httpd: resuming normal operations (pycri fake)",),
    "redis-server": ("* Ready to accept connections tcp (pycri fake)",),
    "postgres": ("LOG:  database system is ready to accept connections (pycri fake)",),
    "mysqld": ("mysqld: ready for connections (pycri fake)",),
    "memcached": (),
    "mongod": ("Waiting for connections (pycri fake)",),
    "etcd": ("ready to serve client requests (pycri fake)",),
    "coredns": ("CoreDNS-fake", "linux/amd64, go, pycri"),
}
PAUSE = "pause"
_ENTRYPOINT_WRAPPERS = frozenset({"docker-entrypoint.sh", "tini", "dumb-init"})


class Terminated(Exception):
    """A signal ended the process; unwinds every shell level."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


class Interrupted(Exception):
    """``^C`` on the process's terminal (SIGINT): ends the foreground command, not a shell."""


class _ExitShell(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _ExpansionError(Exception):
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


class ReadOnlyFileSystem(Exception):
    """A write under a read-only mount (EROFS)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class FakeFS:
    """A container's in-memory filesystem: files only, directories implied.

    Paths under ``read_only`` (image volumes) refuse every change.
    """

    BASE_DIRS: ClassVar[frozenset[str]] = frozenset(
        {"/", "/bin", "/dev", "/etc", "/home", "/proc", "/root", "/sys", "/tmp", "/usr", "/var"}
    )

    def __init__(
        self,
        files: Mapping[str, bytes] | None = None,
        dirs: Sequence[str] = (),
        read_only: Sequence[str] = (),
    ) -> None:
        self._read_only = tuple(posixpath.normpath(p) for p in read_only)
        self._lock = threading.Lock()
        self._files: dict[str, bytes] = dict(files or {})
        self._dirs = set(self.BASE_DIRS) | {posixpath.normpath(d) for d in dirs}
        self._base = set(self._files)
        self.written_bytes = 0

    def read(self, path: str) -> bytes | None:
        with self._lock:
            return self._files.get(path)

    def _check_writable(self, path: str) -> None:
        for root in self._read_only:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                raise ReadOnlyFileSystem(path)

    def write(self, path: str, data: bytes, append: bool = False) -> None:
        self._check_writable(path)
        with self._lock:
            old = self._files.get(path, b"") if append else b""
            self._files[path] = old + data
            self.written_bytes += len(data)

    def remove(self, path: str) -> bool:
        if path in self._files:
            self._check_writable(path)
        with self._lock:
            return self._files.pop(path, None) is not None

    def mkdir(self, path: str) -> None:
        if not self.is_dir(path):
            self._check_writable(path)
        with self._lock:
            self._dirs.add(path)

    def is_file(self, path: str) -> bool:
        with self._lock:
            return path in self._files

    def is_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        with self._lock:
            return path in self._dirs or any(f.startswith(prefix) for f in self._files)

    def user_files(self) -> dict[str, int]:
        """Files written by processes (not the runtime's own): path -> size."""
        with self._lock:
            return {p: len(d) for p, d in self._files.items() if p not in self._base}


@dataclass
class ProcessContext:
    """Where a process runs: its container's environment, identity and files."""

    env: dict[str, str] = field(default_factory=dict)
    hostname: str = "localhost"
    working_dir: str = "/"
    fs: FakeFS = field(default_factory=FakeFS)
    pid: int = 1
    ip: str = ""
    uid: int = 0
    gid: int = 0
    #: supplementary groups (the kernel keeps them sorted)
    groups: tuple[int, ...] = (0,)
    #: the pod's network namespace (ports simulated servers listen on)
    net: FakeNetwork | None = None
    #: the process's pseudo-terminal, when it has one
    terminal: Terminal | None = None

    def for_exec(self, pid: int, terminal: Terminal | None = None) -> ProcessContext:
        """The same container context for another process (shared fs and network)."""
        return dataclasses.replace(self, env=dict(self.env), pid=pid, terminal=terminal)


@dataclass
class IO:
    """A command's streams. ``stdin`` None is an open stdin that never sends data;
    a :class:`Stdin` is a live one (an interactive exec, an attached container)."""

    out: Writer
    err: Writer
    stdin: bytes | Stdin | None = b""


# -- arithmetic ---------------------------------------------------------------


def _arith_eval(node: ast.expr) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return int(node.value)
    if isinstance(node, ast.UnaryOp):
        value = _arith_eval(node.operand)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        if isinstance(node.op, ast.Not):
            return int(not value)
        if isinstance(node.op, ast.Invert):
            return ~value
    if isinstance(node, ast.BinOp):
        a, b = _arith_eval(node.left), _arith_eval(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod):
            if b == 0:
                raise _ExpansionError("arithmetic: division by zero", 2)
            quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # C truncation
            return quotient if not isinstance(node.op, ast.Mod) else a - b * quotient
        if isinstance(node.op, ast.BitAnd):
            return a & b
        if isinstance(node.op, ast.BitOr):
            return a | b
        if isinstance(node.op, ast.BitXor):
            return a ^ b
        if isinstance(node.op, ast.LShift):
            return a << b
        if isinstance(node.op, ast.RShift):
            return a >> b
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        a, b = _arith_eval(node.left), _arith_eval(node.comparators[0])
        compare: dict[type[ast.cmpop], Callable[[int, int], bool]] = {
            ast.Lt: lambda x, y: x < y,
            ast.LtE: lambda x, y: x <= y,
            ast.Gt: lambda x, y: x > y,
            ast.GtE: lambda x, y: x >= y,
            ast.Eq: lambda x, y: x == y,
            ast.NotEq: lambda x, y: x != y,
        }
        fn = compare.get(type(node.ops[0]))
        if fn is not None:
            return int(fn(a, b))
    if isinstance(node, ast.BoolOp):
        values = [_arith_eval(v) for v in node.values]
        return int(all(values) if isinstance(node.op, ast.And) else any(values))
    raise _ExpansionError("arithmetic syntax error", 2)


def is_runnable(program: str) -> bool:
    """Whether the fake can run ``program`` as a process (an executable it knows)."""
    if "/" in program and not program.startswith("/"):
        return False
    name = program.rsplit("/", 1)[-1]
    return (
        name in Shell.BUILTINS
        or name in SHELLS
        or name in DAEMONS
        or name == PAUSE
        or name in _ENTRYPOINT_WRAPPERS
    )


# -- the interpreter --------------------------------------------------------------------

_Builtin = Callable[["Shell", list[str], IO], int]


class Shell:
    """One shell (or command) level; runs scripts and argv in a ProcessContext."""

    BUILTINS: ClassVar[dict[str, _Builtin]] = {}

    def __init__(
        self,
        ctx: ProcessContext,
        control: Control,
        *,
        name: str = "sh",
        args: Sequence[str] = (),
        variables: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.control = control
        self.name = name
        self.positional = list(args)
        self.vars: dict[str, str] = dict(ctx.env if variables is None else variables)
        self.exported: set[str] = set(self.vars)
        self.cwd = cwd or ctx.working_dir or "/"
        self.status = 0
        self.errexit = False
        self.traps: dict[str, str] = {}
        self._conditions = 0

    # -- entry points --------------------------------------------------------

    def run_argv(self, argv: Sequence[str], io: IO) -> int:
        """Run a process's argv (no shell parsing), as an exec would."""
        try:
            return self.run_command(list(argv), io)
        except _ExitShell as done:
            return done.status & 0xFF
        except (_Break, _Continue):
            return 0

    def run_script(self, script: str, io: IO) -> int:
        """Run ``script`` as ``sh -c`` would: the status of the last command."""
        try:
            try:
                tree = parse(script)
            except ShellSyntaxError as err:
                io.err(f"{self.name}: {err}\n".encode())
                return 2
            try:
                self.status = self.exec_node(tree, io)
            except _ExpansionError as err:
                io.err(f"{self.name}: {err.message}\n".encode())
                self.status = err.status
            except (_Break, _Continue):
                pass
        except _ExitShell as done:
            self.status = done.status & 0xFF
        except Terminated:
            handler = self.traps.get("TERM")
            if not (handler and self.control.graceful):
                raise
            self.control.acknowledge()
            self.traps.pop("TERM")
            # Like a real shell, the trap runs and the script then ends (we do not resume it).
            self.status = 143
            self._run_trap(handler, io)
        exit_trap = self.traps.pop("EXIT", "")
        if exit_trap:
            self._run_trap(exit_trap, io)
        return self.status & 0xFF

    def _run_trap(self, handler: str, io: IO) -> None:
        try:
            result = self.exec_node(parse(handler), io)
            if result != 0:
                self.status = result
        except _ExitShell as done:
            self.status = done.status & 0xFF
        except (ShellSyntaxError, _ExpansionError, _Break, _Continue):
            pass

    # -- execution -------------------------------------------------------------

    def exec_node(self, node: Node, io: IO) -> int:
        if isinstance(node, Simple):
            status = self._exec_simple(node, io)
        elif isinstance(node, Seq):
            status = 0
            for item in node.items:
                status = self.exec_node(item, io)
                # set -e ends the script at a failing simple command outside conditions
                if (
                    status
                    and self.errexit
                    and not self._conditions
                    and isinstance(item, Simple | Pipeline | Loop | ForLoop | IfNode | Group)
                    and not (isinstance(item, Pipeline) and item.negate)
                ):
                    raise _ExitShell(status)
        elif isinstance(node, AndOr):
            self._conditions += 1
            try:
                status = self.exec_node(node.first, io)
                for index, (op, item) in enumerate(node.rest):
                    if (op == "&&") == (status == 0):
                        if index == len(node.rest) - 1:
                            self._conditions -= 1
                            try:
                                status = self.exec_node(item, io)
                            finally:
                                self._conditions += 1
                        else:
                            status = self.exec_node(item, io)
            finally:
                self._conditions -= 1
        elif isinstance(node, Pipeline):
            status = self._exec_pipeline(node, io)
        elif isinstance(node, Loop):
            status = self._exec_loop(node, io)
        elif isinstance(node, ForLoop):
            status = 0
            values = (
                self.positional
                if node.items is None
                else [v for w in node.items for v in self.expand_word(w)]
            )
            for value in values:
                self.control.check()
                self.vars[node.var] = value
                try:
                    status = self.exec_node(node.body, io)
                except _Break:
                    break
                except _Continue:
                    continue
        elif isinstance(node, Group):
            status = self._exec_group(node, io)
        else:
            status = self._exec_if(node, io)
        self.status = status
        return status

    def _condition(self, seq: Seq, io: IO) -> int:
        self._conditions += 1
        try:
            return self.exec_node(seq, io)
        finally:
            self._conditions -= 1

    def _exec_loop(self, node: Loop, io: IO) -> int:
        status = 0
        while True:
            self.control.check()
            if (self._condition(node.cond, io) == 0) == node.until:
                return status
            try:
                status = self.exec_node(node.body, io)
            except _Break:
                return status
            except _Continue:
                continue
            # an empty busy loop must not starve the other threads of the runtime
            time.sleep(0)

    def _exec_group(self, node: Group, io: IO) -> int:
        if not node.forked:
            return self.exec_node(node.body, io)
        child = self._child(self.name, self.positional)
        child.vars, child.exported = dict(self.vars), set(self.exported)
        child.status, child.errexit = self.status, self.errexit
        try:
            return child.exec_node(node.body, io)
        except _ExitShell as done:
            return done.status & 0xFF
        except (_Break, _Continue):
            return 0

    def _exec_if(self, node: IfNode, io: IO) -> int:
        for cond, body in node.branches:
            if self._condition(cond, io) == 0:
                return self.exec_node(body, io)
        if node.otherwise is not None:
            return self.exec_node(node.otherwise, io)
        return 0

    def _exec_pipeline(self, node: Pipeline, io: IO) -> int:
        data = io.stdin
        status = 0
        for index, command in enumerate(node.commands):
            last = index == len(node.commands) - 1
            captured = bytearray()
            out: Writer = io.out if last else captured.extend
            try:
                status = self.exec_node(command, IO(out, io.err, data))
            except _ExitShell as done:
                if len(node.commands) == 1:
                    raise
                status = done.status  # each stage of a real pipeline is a subshell
            data = bytes(captured)
        if node.negate:
            return int(status == 0)
        return status

    def _exec_simple(self, node: Simple, io: IO) -> int:
        try:
            return self._exec_simple_checked(node, io)
        except ReadOnlyFileSystem as err:  # a redirection into a read-only mount
            io.err(f"{self.name}: can't create {err.path}: Read-only file system\n".encode())
            return 1

    def _exec_simple_checked(self, node: Simple, io: IO) -> int:
        self.control.check()
        try:
            argv = [v for w in node.words for v in self.expand_word(w)]
            values = [(name, self.expand_string_word(w)) for name, w in node.assigns]
            cmd_io = self._redirect(node.redirs, io)
        except _ExpansionError as err:
            io.err(f"{self.name}: {err.message}\n".encode())
            return err.status
        if not argv:
            for name, value in values:
                self.vars[name] = value
            # "X=$(false)" has the status of its command substitution, "X=1" has 0
            substituted = any(
                isinstance(part, CmdSub)
                for word in (*node.words, *(w for _, w in node.assigns))
                for part in word.parts
            )
            return self.status if substituted else 0
        saved = {name: self.vars.get(name) for name, _ in values}
        exported = set(self.exported)
        for name, value in values:
            self.vars[name] = value
            self.exported.add(name)
        try:
            return self.run_command(argv, cmd_io)
        finally:
            for name, old in saved.items():
                if old is None:
                    self.vars.pop(name, None)
                else:
                    self.vars[name] = old
            self.exported = exported

    def _path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, path))

    def _redirect(self, redirs: list[Redir], io: IO) -> IO:
        out, err, stdin = io.out, io.err, io.stdin
        for redir in redirs:
            if redir.op == "dup":
                streams = {1: out, 2: err}
                if redir.dup not in streams:
                    raise _ExpansionError(f"{redir.dup}: bad file descriptor")
                if redir.fd == 1:
                    out = streams[redir.dup]
                elif redir.fd == 2:
                    err = streams[redir.dup]
                continue
            assert redir.target is not None
            target = self.expand_string_word(redir.target)
            if redir.op == "<":
                data = self.ctx.fs.read(self._path(target))
                if data is None:
                    raise _ExpansionError(f"can't open '{target}': No such file or directory")
                stdin = data
                continue
            writer = self._file_writer(target, redir.op == ">>", out, err)
            if redir.op == "&>":
                out = err = writer
            elif redir.fd == 1:
                out = writer
            elif redir.fd == 2:
                err = writer
        return IO(out, err, stdin)

    def _file_writer(self, target: str, append: bool, out: Writer, err: Writer) -> Writer:
        special = {"/dev/stdout": out, "/dev/stderr": err, "/dev/null": lambda data: None}
        if target in special:
            return special[target]
        path = self._path(target)
        if not append:
            self.ctx.fs.write(path, b"")
        return lambda data: self.ctx.fs.write(path, data, append=True)

    # -- expansion -------------------------------------------------------------------

    def expand_word(self, word: Word) -> list[str]:
        """A word's fields after parameter expansion and field splitting."""
        if len(word.parts) == 1 and word.parts[0] == Param("@", True):
            return list(self.positional)
        fields: list[str] = []
        current = ""
        have = False
        for part in word.parts:
            if isinstance(part, Lit):
                current += part.text
                have = have or part.quoted or bool(part.text)
                continue
            value = self._expand_part(part)
            if part.quoted:
                current += value
                have = True
                continue
            pieces = value.split()
            if value[:1].isspace() and have:
                fields.append(current)
                current, have = "", False
            for index, piece in enumerate(pieces):
                if index:
                    fields.append(current)
                    current = ""
                current += piece
                have = True
            if pieces and value[-1:].isspace():
                fields.append(current)
                current, have = "", False
        if have:
            fields.append(current)
        return fields

    def expand_string_word(self, word: Word) -> str:
        """A word expanded without field splitting (assignments, redirections)."""
        return "".join(p.text if isinstance(p, Lit) else self._expand_part(p) for p in word.parts)

    def expand_string(self, text: str) -> str:
        """Text expanded as if in double quotes."""
        lexer = _Lexer(text)
        return self.expand_string_word(Word(tuple(lexer.double_quoted(None))))

    def _param(self, name: str) -> str | None:
        if name == "?":
            return str(self.status)
        if name == "$":
            return str(self.ctx.pid)
        if name == "#":
            return str(len(self.positional))
        if name in ("@", "*"):
            return " ".join(self.positional)
        if name == "!":
            return ""
        if name.isdigit():
            index = int(name)
            if index == 0:
                return self.name
            return self.positional[index - 1] if index <= len(self.positional) else None
        if name == "PWD":
            return self.cwd
        return self.vars.get(name)

    def _expand_part(self, part: Param | CmdSub | Arith) -> str:
        if isinstance(part, CmdSub):
            return self._command_substitution(part.script)
        if isinstance(part, Arith):
            return self._arith(part.expr)
        value = self._param(part.name)
        op = part.op
        if op == "#":
            return str(len(value or ""))
        unset = value is None or (op.startswith(":") and value == "")
        if op in (":-", "-"):
            return self.expand_string(part.arg) if unset else value or ""
        if op in (":=", "="):
            if unset:
                value = self.expand_string(part.arg)
                self.vars[part.name] = value
            return value or ""
        if op in (":+", "+"):
            return "" if unset else self.expand_string(part.arg)
        if op in (":?", "?") and unset:
            raise _ExpansionError(f"{part.name}: {part.arg or 'parameter not set'}")
        return value or ""

    def _command_substitution(self, script: str) -> str:
        captured = bytearray()
        child = self._child(self.name, self.positional)
        child.vars = dict(self.vars)
        child.exported = set(self.exported)
        self.status = child.run_script(script, IO(captured.extend, lambda _: None, b""))
        return captured.decode(errors="replace").rstrip("\n")

    def _arith(self, expr: str) -> str:
        text = self.expand_string(expr)

        def value(match: re.Match[str]) -> str:
            raw = self.vars.get(match.group(), "0").strip() or "0"
            return raw if re.fullmatch(r"-?[0-9]+", raw) else "0"

        text = _NAME.sub(value, text).replace("&&", " and ").replace("||", " or ")
        text = re.sub(r"!(?!=)", " not ", text).replace("/", "//")
        try:
            tree = ast.parse(text.strip() or "0", mode="eval")
        except SyntaxError:
            raise _ExpansionError(f"arithmetic syntax error: {expr.strip()}", 2) from None
        return str(_arith_eval(tree.body))

    # -- commands -----------------------------------------------------------------

    def _child(self, name: str, args: Sequence[str]) -> Shell:
        exported = {k: v for k, v in self.vars.items() if k in self.exported}
        return Shell(self.ctx, self.control, name=name, args=args, variables=exported, cwd=self.cwd)

    def run_command(self, argv: list[str], io: IO) -> int:
        self.control.check()
        program = argv[0]
        if "/" in program and not program.startswith("/"):
            io.err(f"{self.name}: {program}: not found\n".encode())
            return 127
        name = program.rsplit("/", 1)[-1]
        args = argv[1:]
        builtin = self.BUILTINS.get(name)
        if builtin is not None:
            try:
                return builtin(self, args, io)
            except ReadOnlyFileSystem as err:
                io.err(f"{name}: {err.path}: Read-only file system\n".encode())
                return 1
        if name in SHELLS:
            return self._run_shell(name, args, io)
        if name in DAEMONS:
            return self._daemon(name, args, io)
        if name == PAUSE:
            return self._pause(io)
        if name in _ENTRYPOINT_WRAPPERS:
            # these wrappers set things up, then exec their arguments
            args = args[1:] if args[:1] == ["--"] else args
            return self.run_command(args, io) if args else 0
        io.err(f"{self.name}: {program}: not found\n".encode())
        return 127

    def _run_shell(self, name: str, args: list[str], io: IO) -> int:
        errexit = False
        script: str | None = None
        index = 0
        while index < len(args) and args[index].startswith(("-", "+")) and len(args[index]) > 1:
            flags = args[index][1:]
            index += 1
            if flags == "-":
                break
            if "e" in flags and args[index - 1][0] == "-":
                errexit = True
            if "c" in flags:
                if index >= len(args):
                    io.err(f"{name}: -c requires an argument\n".encode())
                    return 2
                script = args[index]
                index += 1
        rest = args[index:]
        if script is not None:
            shell_name, positional = (rest[0], rest[1:]) if rest else (name, [])
        elif rest:
            data = self.ctx.fs.read(self._path(rest[0]))
            if data is None:
                io.err(f"{name}: can't open '{rest[0]}': No such file or directory\n".encode())
                return 127
            script, shell_name, positional = data.decode(errors="replace"), rest[0], rest[1:]
        else:
            # an interactive shell reads commands from stdin until it closes
            if isinstance(io.stdin, Stdin):
                child = self._child(name, [])
                child.errexit = errexit
                return child.interact(io.stdin, io)
            if io.stdin is None:
                self.control.sleep(None)
            script, shell_name, positional = (io.stdin or b"").decode(errors="replace"), name, []
        child = self._child(shell_name, positional)
        child.errexit = errexit
        return child.run_script(script, IO(io.out, io.err, b""))

    def _daemon(self, name: str, args: list[str], io: IO) -> int:
        if any(a in ("-v", "-V", "--version", "-t") for a in args):
            io.err(f"{name} version: pycri-fake\n".encode())
            return 0
        for line in DAEMONS[name]:
            io.out(line.encode() + b"\n")
        return self.serve_until_stopped()

    def serve_until_stopped(self) -> int:
        """Block as a server daemon does; a plain SIGTERM ends it cleanly (0)."""
        try:
            self.control.sleep(None)
        except Terminated:
            if self.control.graceful:
                raise Terminated(0) from None  # a clean shutdown on SIGTERM
            raise
        return 0

    # -- interactive ---------------------------------------------------------------

    def _prompt(self, continuing: bool) -> bytes:
        if continuing:
            return b"> "
        home = self.vars.get("HOME", "")
        where = "~" + self.cwd[len(home) :] if home and self.cwd.startswith(home) else self.cwd
        return f"{where} {'#' if self.ctx.uid == 0 else '$'} ".encode()

    def interact(self, stdin: Stdin, io: IO) -> int:
        """Read and run commands from a live stdin, line by line, until EOF or ``exit``.

        On a terminal it prompts (``/ # ``, ``> `` for a continued line) and
        survives ``^C``, as busybox ``sh`` does.
        """
        tty = self.ctx.terminal is not None
        buffer = ""
        while True:
            if tty:
                io.out(self._prompt(bool(buffer)))
            try:
                line = stdin.readline(self.control.check)
            except Interrupted:
                buffer, self.status = "", 130
                continue
            if not line:
                if buffer:
                    io.err(f"{self.name}: syntax error: unexpected end of file\n".encode())
                    self.status = 2
                break
            buffer += line.decode(errors="replace")
            try:
                tree = parse(buffer)
            except ShellSyntaxError as err:
                if not _incomplete(err):
                    io.err(f"{self.name}: {err}\n".encode())
                    buffer, self.status = "", 2
                continue
            buffer = ""
            try:
                self.status = self.exec_node(tree, IO(io.out, io.err, stdin))
            except _ExitShell as done:
                self.status = done.status & 0xFF
                break
            except Interrupted:
                self.status = 130
            except _ExpansionError as err:
                io.err(f"{self.name}: {err.message}\n".encode())
                self.status = err.status
            except (_Break, _Continue):
                pass
        exit_trap = self.traps.pop("EXIT", "")
        if exit_trap:
            self._run_trap(exit_trap, io)
        return self.status & 0xFF

    def _pause(self, io: IO) -> int:
        try:
            self.control.sleep(None)
        except Terminated:
            if self.control.graceful:
                raise Terminated(0) from None  # pause exits 0 on SIGTERM
            raise
        return 0

    def _read_input(self, args: list[str], io: IO, tool: str) -> Iterator[tuple[str, bytes | None]]:
        """(name, data) of each input: the files named, or stdin; data None if missing."""
        if not args:
            args = ["-"]
        for arg in args:
            if arg == "-":
                if isinstance(io.stdin, Stdin):
                    yield arg, io.stdin.read_all(self.control.check)
                    continue
                if io.stdin is None:
                    self.control.sleep(None)  # an open stdin that never sends anything
                yield arg, io.stdin or b""
            else:
                data = self.ctx.fs.read(self._path(arg))
                if data is None:
                    if self.ctx.fs.is_dir(self._path(arg)):
                        io.err(f"{tool}: read error: Is a directory\n".encode())
                    else:
                        io.err(f"{tool}: can't open '{arg}': No such file or directory\n".encode())
                yield arg, data


def _incomplete(err: ShellSyntaxError) -> bool:
    """Whether more lines could complete the script (an open loop, quote or group)."""
    message = str(err)
    return "end of file" in message or "unterminated" in message or "missing" in message
