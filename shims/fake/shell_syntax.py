"""The fake shell's syntax: tokens, lexer, syntax tree and parser.

:func:`parse` turns a script into the tree (a :class:`Seq` of :data:`Node`)
that :class:`~.shell.Shell` runs; :class:`ShellSyntaxError` says what is wrong
with one it cannot parse. Words keep their parts (literal text, ``$VAR``,
``$(...)``, ``$((...))``) unexpanded: expansion is the interpreter's job.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AndOr",
    "Arith",
    "CmdSub",
    "ForLoop",
    "Group",
    "IfNode",
    "Lit",
    "Loop",
    "Node",
    "Op",
    "Param",
    "Part",
    "Pipeline",
    "Redir",
    "Seq",
    "ShellSyntaxError",
    "Simple",
    "Token",
    "Word",
    "parse",
]


class ShellSyntaxError(Exception):
    """The script cannot be parsed."""


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
