"""A tiny sh that the fake runtime's simulated processes run.

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
    "Shell",
    "ShellSyntaxError",
    "Terminated",
    "builtin",
    "is_runnable",
    "parse",
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


class ShellSyntaxError(Exception):
    """The script cannot be parsed."""


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


class FakeFS:
    """A container's in-memory filesystem: files only, directories implied."""

    BASE_DIRS: ClassVar[frozenset[str]] = frozenset(
        {"/", "/bin", "/dev", "/etc", "/home", "/proc", "/root", "/sys", "/tmp", "/usr", "/var"}
    )

    def __init__(self, files: Mapping[str, bytes] | None = None, dirs: Sequence[str] = ()) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, bytes] = dict(files or {})
        self._dirs = set(self.BASE_DIRS) | {posixpath.normpath(d) for d in dirs}
        self._base = set(self._files)
        self.written_bytes = 0

    def read(self, path: str) -> bytes | None:
        with self._lock:
            return self._files.get(path)

    def write(self, path: str, data: bytes, append: bool = False) -> None:
        with self._lock:
            old = self._files.get(path, b"") if append else b""
            self._files[path] = old + data
            self.written_bytes += len(data)

    def remove(self, path: str) -> bool:
        with self._lock:
            return self._files.pop(path, None) is not None

    def mkdir(self, path: str) -> None:
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


# -- tokens -------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    text: str
    quoted: bool


@dataclass(frozen=True)
class Param:
    name: str
    quoted: bool
    op: str = ""
    arg: str = ""


@dataclass(frozen=True)
class CmdSub:
    script: str
    quoted: bool


@dataclass(frozen=True)
class Arith:
    expr: str
    quoted: bool


Part = Lit | Param | CmdSub | Arith


@dataclass(frozen=True)
class Word:
    parts: tuple[Part, ...]

    def literal(self) -> str | None:
        """The text of an unquoted plain word (keywords, names), else None."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Lit) and not self.parts[0].quoted:
            return self.parts[0].text
        return None


@dataclass(frozen=True)
class Op:
    text: str


@dataclass(frozen=True)
class Redir:
    fd: int
    op: str  # ">", ">>", "<", "&>", "dup"
    dup: int = -1
    target: Word | None = None


Token = Word | Op | Redir

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
_PARAM_BODY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?$#@*!])(?:(:?[-=+?])(.*))?$", re.S)
_SPECIAL_PARAMS = "?$#@*!"


def _match_paren(src: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``, skipping quoted text."""
    depth, i = 0, start
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = src.find("'", i + 1)
            if end < 0:
                break
            i = end + 1
            continue
        if c == '"':
            i += 1
            while i < len(src) and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            i += 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellSyntaxError("syntax error: missing ')'")


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0
        self.tokens: list[Token] = []
        self.parts: list[Part] = []
        self.buf: list[str] = []
        self.in_word = False

    def _flush_buf(self) -> None:
        if self.buf:
            self.parts.append(Lit("".join(self.buf), False))
            self.buf = []

    def _end_word(self) -> None:
        self._flush_buf()
        if self.in_word:
            self.tokens.append(Word(tuple(self.parts)))
        self.parts = []
        self.in_word = False

    def _peek(self, offset: int = 1) -> str:
        j = self.i + offset
        return self.src[j] if j < len(self.src) else ""

    def tokens_of(self) -> list[Token]:
        src = self.src
        while self.i < len(src):
            c = src[self.i]
            if c in " \t\r":
                self._end_word()
                self.i += 1
            elif c == "\n":
                self._end_word()
                self.tokens.append(Op("\n"))
                self.i += 1
            elif c == "#" and not self.in_word:
                end = src.find("\n", self.i)
                self.i = len(src) if end < 0 else end
            elif c == ";":
                self._end_word()
                if self._peek() == ";":
                    raise ShellSyntaxError("syntax error: 'case' is not supported")
                self.tokens.append(Op(";"))
                self.i += 1
            elif c == "&":
                self._end_word()
                if self._peek() == "&":
                    self.tokens.append(Op("&&"))
                    self.i += 2
                elif self._peek() == ">":
                    self.tokens.append(Redir(1, "&>"))
                    self.i += 2
                else:
                    self.tokens.append(Op("&"))
                    self.i += 1
            elif c == "|":
                self._end_word()
                if self._peek() == "|":
                    self.tokens.append(Op("||"))
                    self.i += 2
                else:
                    self.tokens.append(Op("|"))
                    self.i += 1
            elif c in "<>":
                self._redirect()
            elif c in "()":
                self._end_word()
                self.tokens.append(Op(c))
                self.i += 1
            elif c == "\\":
                nxt = self._peek()
                if nxt == "\n":
                    self.i += 2
                    continue
                self.buf.append(nxt or "\\")
                self.in_word = True
                self.i += 2
            elif c == "'":
                end = src.find("'", self.i + 1)
                if end < 0:
                    raise ShellSyntaxError("syntax error: unterminated quoted string")
                self._flush_buf()
                self.parts.append(Lit(src[self.i + 1 : end], True))
                self.in_word = True
                self.i = end + 1
            elif c == '"':
                self._flush_buf()
                self.i += 1
                self.parts.extend(self.double_quoted('"'))
                self.in_word = True
            elif c in "$`":
                part = self._dollar(False) if c == "$" else self._backtick(False)
                if isinstance(part, Lit):
                    self.buf.append(part.text)
                else:
                    self._flush_buf()
                    self.parts.append(part)
                self.in_word = True
            else:
                self.buf.append(c)
                self.in_word = True
                self.i += 1
        self._end_word()
        return self.tokens

    def double_quoted(self, terminator: str | None) -> list[Part]:
        """Parts of double-quoted text up to ``terminator`` (None: the end)."""
        parts: list[Part] = []
        lit: list[str] = []
        src = self.src
        while True:
            if self.i >= len(src):
                if terminator is not None:
                    raise ShellSyntaxError("syntax error: unterminated quoted string")
                break
            c = src[self.i]
            if c == terminator:
                self.i += 1
                break
            if c == "\\" and self._peek() in ("$", "`", '"', "\\", "\n"):
                if self._peek() != "\n":
                    lit.append(self._peek())
                self.i += 2
            elif c in "$`":
                part = self._dollar(True) if c == "$" else self._backtick(True)
                if isinstance(part, Lit):
                    lit.append(part.text)
                else:
                    parts.append(Lit("".join(lit), True))
                    lit = []
                    parts.append(part)
            else:
                lit.append(c)
                self.i += 1
        parts.append(Lit("".join(lit), True))
        return parts

    def _backtick(self, quoted: bool) -> Part:
        start = self.i + 1
        j = start
        while j < len(self.src) and self.src[j] != "`":
            j += 2 if self.src[j] == "\\" else 1
        if j >= len(self.src):
            raise ShellSyntaxError("syntax error: unterminated `")
        self.i = j + 1
        return CmdSub(self.src[start:j].replace("\\`", "`"), quoted)

    def _dollar(self, quoted: bool) -> Part:
        src, i = self.src, self.i
        nxt = self._peek()
        if nxt == "(" and self._peek(2) == "(":
            end = _match_paren(src, i + 1)
            if src[end - 1] != ")":
                raise ShellSyntaxError("syntax error: bad arithmetic expression")
            self.i = end + 1
            return Arith(src[i + 3 : end - 1], quoted)
        if nxt == "(":
            end = _match_paren(src, i + 1)
            self.i = end + 1
            return CmdSub(src[i + 2 : end], quoted)
        if nxt == "{":
            end = src.find("}", i + 2)
            if end < 0:
                raise ShellSyntaxError("syntax error: missing '}'")
            body = src[i + 2 : end]
            self.i = end + 1
            if body.startswith("#") and len(body) > 1:
                return Param(body[1:], quoted, "#")
            match = _PARAM_BODY.match(body)
            if match is None:
                raise ShellSyntaxError(f"syntax error: bad substitution ${{{body}}}")
            return Param(match[1], quoted, match[2] or "", match[3] or "")
        if nxt and (nxt in _SPECIAL_PARAMS or nxt.isdigit()):
            self.i += 2
            return Param(nxt, quoted)
        name = _NAME.match(src, i + 1)
        if name is not None:
            self.i = name.end()
            return Param(name.group(), quoted)
        self.i += 1
        return Lit("$", quoted)

    def _redirect(self) -> None:
        src = self.src
        fd: int | None = None
        if self.in_word and not self.parts and self.buf and "".join(self.buf).isdigit():
            fd = int("".join(self.buf))
            self.buf = []
            self.in_word = False
        else:
            self._end_word()
        c = src[self.i]
        if c == "<":
            if self._peek() == "<":
                raise ShellSyntaxError("here-documents are not supported by the fake shell")
            self.tokens.append(Redir(0 if fd is None else fd, "<"))
            self.i += 1
            return
        fd = 1 if fd is None else fd
        if self._peek() == ">":
            self.tokens.append(Redir(fd, ">>"))
            self.i += 2
        elif self._peek() == "&":
            digits = re.match(r"[0-9]+", src[self.i + 2 :])
            if digits is None:
                raise ShellSyntaxError("syntax error: '>&' needs a file descriptor number")
            self.tokens.append(Redir(fd, "dup", int(digits.group())))
            self.i += 2 + digits.end()
        else:
            self.tokens.append(Redir(fd, ">"))
            self.i += 2 if self._peek() == "|" else 1


# -- syntax tree -----------------------------------------------------------------


@dataclass
class Simple:
    assigns: list[tuple[str, Word]]
    words: list[Word]
    redirs: list[Redir]


@dataclass
class Pipeline:
    commands: list[Node]
    negate: bool


@dataclass
class AndOr:
    first: Node
    rest: list[tuple[str, Node]]


@dataclass
class Seq:
    items: list[Node]


@dataclass
class Loop:
    cond: Seq
    body: Seq
    until: bool


@dataclass
class ForLoop:
    var: str
    items: list[Word] | None
    body: Seq


@dataclass
class IfNode:
    branches: list[tuple[Seq, Seq]]
    otherwise: Seq | None


@dataclass
class Group:
    body: Seq
    forked: bool  # ( ... ) runs in a copy of the shell (a subshell); { ...; } in the shell itself


Node = Simple | Pipeline | AndOr | Seq | Loop | ForLoop | IfNode | Group

_SEPARATORS = (";", "\n", "&")
_RESERVED = frozenset({"do", "done", "then", "elif", "else", "fi", "in", "{", "}"})


def _describe(tok: Token) -> str:
    if isinstance(tok, Op):
        return "newline" if tok.text == "\n" else repr(tok.text)
    if isinstance(tok, Redir):
        return "redirection"
    return repr(tok.literal() or "word")


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.subshells = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self) -> str | None:
        tok = self.peek()
        return tok.literal() if isinstance(tok, Word) else None

    def op(self) -> str | None:
        tok = self.peek()
        return tok.text if isinstance(tok, Op) else None

    def unexpected(self) -> ShellSyntaxError:
        tok = self.peek()
        what = "end of file" if tok is None else _describe(tok)
        return ShellSyntaxError(f"syntax error: unexpected {what}")

    def expect(self, keyword: str) -> None:
        if self.keyword() != keyword:
            tok = self.peek()
            found = "end of file" if tok is None else _describe(tok)
            raise ShellSyntaxError(f"syntax error: expected '{keyword}', found {found}")
        self.i += 1

    def skip(self, ops: Sequence[str]) -> None:
        while self.op() in ops:
            self.i += 1

    def parse(self) -> Seq:
        seq = self.sequence(frozenset())
        if self.peek() is not None:
            raise self.unexpected()
        return seq

    def sequence(self, terminators: frozenset[str]) -> Seq:
        items: list[Node] = []
        while True:
            self.skip(_SEPARATORS)
            if self.peek() is None or self.keyword() in terminators:
                return Seq(items)
            if self.subshells and self.op() == ")":
                return Seq(items)
            items.append(self.and_or())
            if self.peek() is None or self.op() in _SEPARATORS:
                continue
            if self.subshells and self.op() == ")":
                continue
            raise self.unexpected()

    def and_or(self) -> Node:
        first = self.pipeline()
        rest: list[tuple[str, Node]] = []
        while (op := self.op()) in ("&&", "||"):
            self.i += 1
            self.skip(("\n",))
            rest.append((str(op), self.pipeline()))
        return AndOr(first, rest) if rest else first

    def pipeline(self) -> Node:
        negate = self.keyword() == "!"
        if negate:
            self.i += 1
        commands = [self.command()]
        while self.op() == "|":
            self.i += 1
            self.skip(("\n",))
            commands.append(self.command())
        if negate or len(commands) > 1:
            return Pipeline(commands, negate)
        return commands[0]

    def command(self) -> Node:
        kw = self.keyword()
        if kw in ("while", "until"):
            self.i += 1
            cond = self.sequence(frozenset({"do"}))
            self.expect("do")
            body = self.sequence(frozenset({"done"}))
            self.expect("done")
            return Loop(cond, body, until=kw == "until")
        if kw == "for":
            return self.for_loop()
        if kw == "if":
            return self.if_clause()
        if kw == "{":
            self.i += 1
            body = self.sequence(frozenset({"}"}))
            self.expect("}")
            return Group(body, forked=False)
        if kw in _RESERVED:
            raise self.unexpected()
        if self.op() == "(":
            self.i += 1
            self.subshells += 1
            body = self.sequence(frozenset())
            self.subshells -= 1
            if self.op() != ")":
                raise ShellSyntaxError("syntax error: missing ')'")
            self.i += 1
            return Group(body, forked=True)
        return self.simple()

    def for_loop(self) -> Node:
        self.i += 1
        tok = self.peek()
        name = tok.literal() if isinstance(tok, Word) else None
        if name is None or not _NAME.fullmatch(name):
            raise ShellSyntaxError("syntax error: bad for loop variable")
        self.i += 1
        self.skip(("\n",))
        items: list[Word] | None = None
        if self.keyword() == "in":
            self.i += 1
            items = []
            while isinstance(tok := self.peek(), Word):
                items.append(tok)
                self.i += 1
        self.skip(_SEPARATORS)
        self.expect("do")
        body = self.sequence(frozenset({"done"}))
        self.expect("done")
        return ForLoop(name, items, body)

    def if_clause(self) -> Node:
        branches: list[tuple[Seq, Seq]] = []
        ends = frozenset({"elif", "else", "fi"})
        while True:
            self.i += 1  # "if" or "elif"
            cond = self.sequence(frozenset({"then"}))
            self.expect("then")
            branches.append((cond, self.sequence(ends)))
            if self.keyword() != "elif":
                break
        otherwise = None
        if self.keyword() == "else":
            self.i += 1
            otherwise = self.sequence(frozenset({"fi"}))
        self.expect("fi")
        return IfNode(branches, otherwise)

    def simple(self) -> Node:
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirs: list[Redir] = []
        while True:
            tok = self.peek()
            if isinstance(tok, Word):
                first = tok.parts[0] if tok.parts else None
                match = (
                    _ASSIGNMENT.match(first.text)
                    if not words and isinstance(first, Lit) and not first.quoted
                    else None
                )
                if match is not None and isinstance(first, Lit):
                    value = Word((Lit(first.text[match.end() :], False), *tok.parts[1:]))
                    assigns.append((match[1], value))
                else:
                    words.append(tok)
                self.i += 1
            elif isinstance(tok, Redir):
                self.i += 1
                if tok.op != "dup":
                    target = self.peek()
                    if not isinstance(target, Word):
                        raise ShellSyntaxError("syntax error: redirection without a file name")
                    self.i += 1
                    tok = dataclasses.replace(tok, target=target)
                redirs.append(tok)
            else:
                break
        if not (assigns or words or redirs):
            raise self.unexpected()
        return Simple(assigns, words, redirs)


def parse(script: str) -> Seq:
    """Parse a script; ShellSyntaxError says what is wrong."""
    return _Parser(_Lexer(script).tokens_of()).parse()


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
_SLEEP_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ECHO_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "\\": "\\",
    "a": "\a",
    "b": "\b",
    "r": "\r",
    "v": "\v",
    "f": "\f",
    "e": "\x1b",
    '"': '"',
}
_PRINTF_SPEC = re.compile(r"%([-+ 0#]*)(\d*)(?:\.(\d+))?([sdiuxXocfeEgGb%])")


def _unescape(text: str) -> tuple[str, bool]:
    """Backslash escapes of ``echo -e`` / printf; True when ``\\c`` stops output."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 >= len(text):
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "c":
            return "".join(out), True
        if nxt == "0" or nxt in "1234567":
            digits = re.match(r"[0-7]{1,3}", text[i + 1 + (nxt == "0") :])
            value = int(digits.group(), 8) if digits else 0
            out.append(chr(value))
            i += 2 + (nxt == "0") + (len(digits.group()) if digits else 0) - 1
            continue
        out.append(_ECHO_ESCAPES.get(nxt, "\\" + nxt))
        i += 2
    return "".join(out), False


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
            return builtin(self, args, io)
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


def _builtin(*names: str) -> Callable[[_Builtin], _Builtin]:
    def register(fn: _Builtin) -> _Builtin:
        for name in names:
            Shell.BUILTINS[name] = fn
        return fn

    return register


#: register more builtins from other modules (the network commands)
builtin = _builtin


@_builtin("true", ":", "wait")
def _true(sh: Shell, args: list[str], io: IO) -> int:
    return 0


@_builtin("false")
def _false(sh: Shell, args: list[str], io: IO) -> int:
    return 1


@_builtin("echo")
def _echo(sh: Shell, args: list[str], io: IO) -> int:
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        flags = args.pop(0)[1:]
        newline = newline and "n" not in flags
        if "e" in flags:
            escapes = True
        if "E" in flags:
            escapes = False
    text = " ".join(args)
    stop = False
    if escapes:
        text, stop = _unescape(text)
    if newline and not stop:
        text += "\n"
    io.out(text.encode())
    return 0


def _printf_once(fmt: str, values: list[str], io: IO) -> tuple[str, int, int]:
    """One pass of a printf format: (text, arguments consumed, status)."""
    consumed = 0
    status = 0

    def convert(match: re.Match[str]) -> str:
        nonlocal consumed, status
        flags, width, precision, conv = match.groups()
        if conv == "%":
            return "%"
        arg = values[consumed] if consumed < len(values) else ""
        consumed += 1
        spec = "%" + flags + width + (f".{precision}" if precision is not None else "")
        if conv in ("s", "b"):
            return (spec + "s") % (_unescape(arg)[0] if conv == "b" else arg)
        if conv == "c":
            return (spec + "s") % arg[:1]
        try:
            if conv in "feEgG":
                return (spec + conv) % float(arg or 0)
            number = ord(arg[1:2] or "\0") if arg.startswith("'") else int(arg or "0", 0)
        except ValueError:
            io.err(f"printf: invalid number '{arg}'\n".encode())
            status = 1
            number = 0
        return (spec + ("d" if conv in "iu" else conv)) % number

    return _PRINTF_SPEC.sub(convert, fmt), consumed, status


@_builtin("printf")
def _printf(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        io.err(b"printf: usage: printf FORMAT [ARGUMENT]...\n")
        return 2
    fmt, stop = _unescape(args[0])
    values = args[1:]
    status = 0
    out: list[str] = []
    while True:
        # the format is reused while arguments remain, as in every printf
        text, consumed, failed = _printf_once(fmt, values, io)
        out.append(text)
        status = status or failed
        values = values[consumed:]
        if stop or not values or consumed == 0:
            break
    io.out("".join(out).encode())
    return status


def _duration(text: str) -> float | None:
    if text.lower() in ("inf", "infinity"):
        return None
    unit = _SLEEP_UNITS.get(text[-1:], 0.0)
    number = text[:-1] if unit else text
    value = float(number)
    if value < 0 or value != value:
        raise ValueError(text)
    return value * (unit or 1.0)


@_builtin("sleep")
def _sleep(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        io.err(b"sleep: missing operand\n")
        return 1
    total: float | None = 0.0
    for arg in args:
        try:
            value = _duration(arg)
        except ValueError:
            io.err(f"sleep: invalid number '{arg}'\n".encode())
            return 1
        total = None if value is None or total is None else total + value
    sh.control.sleep(total)
    return 0


@_builtin("exit")
def _exit(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        raise _ExitShell(sh.status)
    try:
        code = int(args[0])
    except ValueError:
        io.err(f"{sh.name}: exit: Illegal number: {args[0]}\n".encode())
        raise _ExitShell(2) from None
    raise _ExitShell(code & 0xFF)


@_builtin("exec")
def _exec(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        return 0
    raise _ExitShell(sh.run_command(args, io))


@_builtin("break")
def _break(sh: Shell, args: list[str], io: IO) -> int:
    raise _Break


@_builtin("continue")
def _continue(sh: Shell, args: list[str], io: IO) -> int:
    raise _Continue


@_builtin("cat")
def _cat(sh: Shell, args: list[str], io: IO) -> int:
    if isinstance(io.stdin, Stdin) and not [a for a in args if a not in ("-", "-u")]:
        # a live stdin is copied as it arrives, line by line on a terminal
        while chunk := io.stdin.read(sh.control.check):
            io.out(chunk)
        return 0
    status = 0
    for _, data in sh._read_input([a for a in args if a != "-u"], io, "cat"):
        if data is None:
            status = 1
        else:
            io.out(data)
    return status


def _exported(sh: Shell) -> dict[str, str]:
    return {k: v for k, v in sh.vars.items() if k in sh.exported}


@_builtin("env")
def _env(sh: Shell, args: list[str], io: IO) -> int:
    env = _exported(sh)
    if args[:1] in (["-i"], ["-"]):
        env, args = {}, args[1:]
    while args and "=" in args[0]:
        key, _, value = args.pop(0).partition("=")
        env[key] = value
    if args:  # env NAME=VALUE... COMMAND runs the command with that environment
        child = Shell(sh.ctx, sh.control, name=sh.name, variables=env, cwd=sh.cwd)
        return child.run_command(list(args), io)
    io.out("".join(f"{k}={v}\n" for k, v in env.items()).encode())
    return 0


@_builtin("printenv")
def _printenv(sh: Shell, args: list[str], io: IO) -> int:
    env = _exported(sh)
    if not args:
        io.out("".join(f"{k}={v}\n" for k, v in env.items()).encode())
        return 0
    for name in args:
        if name in env:
            io.out(f"{env[name]}\n".encode())
    return 0 if all(name in env for name in args) else 1


@_builtin("export")
def _export(sh: Shell, args: list[str], io: IO) -> int:
    for arg in args:
        if arg == "-p":
            continue
        name, eq, value = arg.partition("=")
        if eq:
            sh.vars[name] = value
        sh.exported.add(name)
    return 0


@_builtin("unset")
def _unset(sh: Shell, args: list[str], io: IO) -> int:
    for name in args:
        if not name.startswith("-"):
            sh.vars.pop(name, None)
            sh.exported.discard(name)
    return 0


@_builtin("set")
def _set(sh: Shell, args: list[str], io: IO) -> int:
    for index, arg in enumerate(args):
        if arg == "--":
            sh.positional = args[index + 1 :]
            break
        if arg.startswith("-") and "e" in arg:
            sh.errexit = True
        elif arg.startswith("+") and "e" in arg:
            sh.errexit = False
        elif not arg.startswith(("-", "+")):
            sh.positional = args[index:]
            break
    return 0


@_builtin("shift")
def _shift(sh: Shell, args: list[str], io: IO) -> int:
    count = int(args[0]) if args and args[0].isdigit() else 1
    if count > len(sh.positional):
        return 1
    sh.positional = sh.positional[count:]
    return 0


@_builtin("trap")
def _trap(sh: Shell, args: list[str], io: IO) -> int:
    if len(args) < 2:
        return 0
    action, signals = args[0], args[1:]
    for sig in signals:
        name = sig.upper().removeprefix("SIG")
        name = {"15": "TERM", "0": "EXIT", "2": "INT"}.get(name, name)
        if action == "-" or not action:
            sh.traps.pop(name, None)
        else:
            sh.traps[name] = action
    return 0


@_builtin("cd")
def _cd(sh: Shell, args: list[str], io: IO) -> int:
    target = args[0] if args else sh.vars.get("HOME", "/")
    path = sh._path(target)
    if sh.ctx.fs.is_file(path):
        io.err(f"{sh.name}: cd: can't cd to {target}: Not a directory\n".encode())
        return 1
    sh.cwd = path
    return 0


@_builtin("pwd")
def _pwd(sh: Shell, args: list[str], io: IO) -> int:
    io.out(f"{sh.cwd}\n".encode())
    return 0


@_builtin("hostname")
def _hostname(sh: Shell, args: list[str], io: IO) -> int:
    if args and args[0] == "-i":
        io.out(f"{sh.ctx.ip or '127.0.0.1'}\n".encode())
    else:
        io.out(f"{sh.ctx.hostname}\n".encode())
    return 0


@_builtin("id")
def _id(sh: Shell, args: list[str], io: IO) -> int:
    uid, gid = sh.ctx.uid, sh.ctx.gid
    user = "root" if uid == 0 else str(uid)
    if args[:1] == ["-u"]:
        io.out(f"{uid}\n".encode())
    elif args[:1] in (["-un"], ["-nu"]):
        io.out(f"{user}\n".encode())
    elif args[:1] == ["-g"]:
        io.out(f"{gid}\n".encode())
    elif uid == 0 and gid == 0:
        io.out(b"uid=0(root) gid=0(root) groups=0(root)\n")
    else:
        io.out(f"uid={uid} gid={gid} groups={gid}\n".encode())
    return 0


@_builtin("whoami")
def _whoami(sh: Shell, args: list[str], io: IO) -> int:
    io.out(f"{'root' if sh.ctx.uid == 0 else sh.ctx.uid}\n".encode())
    return 0


@_builtin("date")
def _date(sh: Shell, args: list[str], io: IO) -> int:
    fmt = "%a %b %e %H:%M:%S UTC %Y"
    for arg in args:
        if arg.startswith("+"):
            fmt = arg[1:]
    now = time.time()
    fmt = fmt.replace("%s", str(int(now))).replace("%N", f"{time.time_ns() % 10**9:09d}")
    io.out((time.strftime(fmt, time.gmtime(now)) + "\n").encode())
    return 0


@_builtin("uname")
def _uname(sh: Shell, args: list[str], io: IO) -> int:
    if "-a" in args:
        line = f"Linux {sh.ctx.hostname} 6.1.0-pycri-fake #1 SMP x86_64 GNU/Linux"
    elif "-r" in args:
        line = "6.1.0-pycri-fake"
    elif "-m" in args:
        line = "x86_64"
    elif "-n" in args:
        line = sh.ctx.hostname
    else:
        line = "Linux"
    io.out(f"{line}\n".encode())
    return 0


@_builtin("seq")
def _seq(sh: Shell, args: list[str], io: IO) -> int:
    try:
        numbers = [int(a) for a in args]
    except ValueError:
        io.err(f"seq: invalid number '{' '.join(args)}'\n".encode())
        return 1
    if len(numbers) == 1:
        first, step, last = 1, 1, numbers[0]
    elif len(numbers) == 2:
        first, step, last = numbers[0], 1, numbers[1]
    elif len(numbers) == 3 and numbers[1]:
        first, step, last = numbers
    else:
        io.err(b"seq: usage: seq [FIRST [INC]] LAST\n")
        return 1
    values = range(first, last + (1 if step > 0 else -1), step)
    io.out("".join(f"{v}\n" for v in values).encode())
    return 0


def _lines_option(args: list[str]) -> tuple[int, list[str]]:
    count, rest = 10, []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-n" and index + 1 < len(args):
            count = int(args[index + 1])
            index += 2
            continue
        if re.fullmatch(r"-n?[0-9]+", arg):
            count = int(arg.lstrip("-n"))
        else:
            rest.append(arg)
        index += 1
    return count, rest


def _head_or_tail(sh: Shell, args: list[str], io: IO, tool: str) -> int:
    try:
        count, files = _lines_option(args)
    except ValueError:
        io.err(f"{tool}: invalid number of lines\n".encode())
        return 1
    status = 0
    for _, data in sh._read_input([f for f in files if f != "-f"], io, tool):
        if data is None:
            status = 1
            continue
        lines = data.splitlines(keepends=True)
        io.out(b"".join(lines[-count:] if tool == "tail" and count else lines[:count]))
    return status


@_builtin("head")
def _head(sh: Shell, args: list[str], io: IO) -> int:
    return _head_or_tail(sh, args, io, "head")


@_builtin("tail")
def _tail(sh: Shell, args: list[str], io: IO) -> int:
    return _head_or_tail(sh, args, io, "tail")


@_builtin("wc")
def _wc(sh: Shell, args: list[str], io: IO) -> int:
    flags = "".join(a[1:] for a in args if a.startswith("-") and a != "-")
    files = [a for a in args if not a.startswith("-") or a == "-"]
    status = 0
    for name, data in sh._read_input(files, io, "wc"):
        if data is None:
            status = 1
            continue
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
        chosen = [counts[f] for f in "lwc" if f in flags] or list(counts.values())
        text = (
            " ".join(str(c) for c in chosen)
            if len(chosen) == 1
            else " ".join(f"{c:7d}" for c in chosen)
        )
        io.out(f"{text}{' ' + name if files and name != '-' else ''}\n".encode())
    return status


@_builtin("grep")
def _grep(sh: Shell, args: list[str], io: IO) -> int:
    flags: set[str] = set()
    rest: list[str] = []
    for arg in args:
        if arg.startswith("-") and len(arg) > 1 and not rest:
            flags.update(arg[1:])
        else:
            rest.append(arg)
    if not rest:
        io.err(b"grep: usage: grep [-ivqcF] PATTERN [FILE]...\n")
        return 2
    pattern, files = rest[0], rest[1:]
    try:
        regex = re.compile(
            re.escape(pattern) if "F" in flags else pattern, re.IGNORECASE if "i" in flags else 0
        )
    except re.error:
        io.err(f"grep: bad regex '{pattern}'\n".encode())
        return 2
    found, status = 0, 0
    for name, data in sh._read_input(files, io, "grep"):
        if data is None:
            status = 2
            continue
        for line in data.decode(errors="replace").splitlines():
            if bool(regex.search(line)) != ("v" in flags):
                found += 1
                if "q" not in flags and "c" not in flags:
                    prefix = f"{name}:" if len(files) > 1 else ""
                    io.out(f"{prefix}{line}\n".encode())
    if "c" in flags:
        io.out(f"{found}\n".encode())
    return status or (0 if found else 1)


@_builtin("touch")
def _touch(sh: Shell, args: list[str], io: IO) -> int:
    for arg in args:
        if not arg.startswith("-"):
            path = sh._path(arg)
            if not sh.ctx.fs.is_file(path):
                sh.ctx.fs.write(path, b"")
    return 0


@_builtin("rm")
def _rm(sh: Shell, args: list[str], io: IO) -> int:
    force = any(a.startswith("-") and "f" in a for a in args)
    status = 0
    for arg in args:
        if arg.startswith("-"):
            continue
        if not sh.ctx.fs.remove(sh._path(arg)) and not force:
            io.err(f"rm: can't remove '{arg}': No such file or directory\n".encode())
            status = 1
    return status


@_builtin("mkdir")
def _mkdir(sh: Shell, args: list[str], io: IO) -> int:
    for arg in args:
        if not arg.startswith("-"):
            sh.ctx.fs.mkdir(sh._path(arg))
    return 0


@_builtin("test")
def _test(sh: Shell, args: list[str], io: IO) -> int:
    return _test_impl(sh, args, io, bracket=False)


@_builtin("[")
def _bracket(sh: Shell, args: list[str], io: IO) -> int:
    return _test_impl(sh, args, io, bracket=True)


def _test_impl(sh: Shell, args: list[str], io: IO, *, bracket: bool) -> int:
    if bracket:
        if not args or args[-1] != "]":
            io.err(b"[: missing ]\n")
            return 2
        args = args[:-1]
    negate = False
    if args[:1] == ["!"]:
        negate, args = True, args[1:]
    try:
        result = _test_expr(sh, args)
    except ValueError as err:
        io.err(f"test: {err}\n".encode())
        return 2
    return int(result == negate)


def _test_expr(sh: Shell, args: list[str]) -> bool:
    if not args:
        return False
    if len(args) == 1:
        return args[0] != ""
    if len(args) == 2:
        op, value = args
        fs, path = sh.ctx.fs, sh._path(value)
        unary: dict[str, Callable[[], bool]] = {
            "-z": lambda: value == "",
            "-n": lambda: value != "",
            "-f": lambda: fs.is_file(path),
            "-e": lambda: fs.is_file(path) or fs.is_dir(path),
            "-d": lambda: fs.is_dir(path),
            "-s": lambda: bool(fs.read(path)),
            "-r": lambda: fs.is_file(path) or fs.is_dir(path),
            "-w": lambda: fs.is_file(path) or fs.is_dir(path),
            "-x": lambda: is_runnable(value),
        }
        if op not in unary:
            raise ValueError(f"{op}: unknown operand")
        return unary[op]()
    if len(args) == 3:
        left, op, right = args
        if op in ("=", "=="):
            return left == right
        if op == "!=":
            return left != right
        numeric: dict[str, Callable[[int, int], bool]] = {
            "-eq": lambda a, b: a == b,
            "-ne": lambda a, b: a != b,
            "-lt": lambda a, b: a < b,
            "-le": lambda a, b: a <= b,
            "-gt": lambda a, b: a > b,
            "-ge": lambda a, b: a >= b,
        }
        if op in numeric:
            try:
                return numeric[op](int(left), int(right))
            except ValueError:
                raise ValueError("integer expression expected") from None
        raise ValueError(f"{op}: unknown operator")
    raise ValueError("too many arguments")
