"""The fake shell's syntax tree and parser.

:func:`parse` turns a script into the tree (a :class:`Seq` of :data:`Node`)
that :class:`~pycri_shims.fake.sh.interpreter.Shell` runs;
:class:`~pycri_shims.fake.sh.lexer.ShellSyntaxError` says what is wrong with one
it cannot parse. The tokens come from :mod:`pycri_shims.fake.sh.lexer`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from pycri_shims.fake.sh.lexer import (
    ASSIGNMENT,
    NAME,
    Lexer,
    Lit,
    Op,
    Redir,
    ShellSyntaxError,
    Token,
    Word,
)

__all__ = [
    "AndOr",
    "ForLoop",
    "Group",
    "IfNode",
    "Loop",
    "Node",
    "Pipeline",
    "Seq",
    "Simple",
    "parse",
]


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
        if name is None or not NAME.fullmatch(name):
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
                    ASSIGNMENT.match(first.text)
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
    return _Parser(Lexer(script).tokens_of()).parse()
