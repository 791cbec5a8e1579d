"""The fake shell's tokens and lexer: words with their unexpanded parts, operators, redirections.

:class:`Lexer` turns a script into :data:`Token` s for :mod:`.parser`. Words keep their
parts (literal text, ``$VAR``, ``$(...)``, ``$((...))``) unexpanded: expansion is the
interpreter's job, which also uses :meth:`Lexer.double_quoted` to expand text as if quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ASSIGNMENT",
    "NAME",
    "Arith",
    "CmdSub",
    "Lexer",
    "Lit",
    "Op",
    "Param",
    "Part",
    "Redir",
    "ShellSyntaxError",
    "Token",
    "Word",
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

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
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


class Lexer:
    """Splits a script into tokens; :meth:`double_quoted` reads the inside of double quotes."""

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
        name = NAME.match(src, i + 1)
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
