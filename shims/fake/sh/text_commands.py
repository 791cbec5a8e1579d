"""Commands that read and print text: ``echo printf cat seq head tail wc grep``.

They read the files named (from the container's in-memory filesystem) or
stdin, fixed or live, as busybox's do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pycri_shims.fake.sh.context import IO
from pycri_shims.fake.sh.interpreter import Shell
from pycri_shims.fake.stdio import Stdin

__all__ = [
    "cat_command",
    "echo_command",
    "grep_command",
    "head_command",
    "printf_command",
    "seq_command",
    "tail_command",
    "wc_command",
]

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


def echo_command(sh: Shell, args: list[str], io: IO) -> int:
    """echo [-neE] [ARG]...: print the arguments (``-e``: backslash escapes)."""
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


def printf_command(sh: Shell, args: list[str], io: IO) -> int:
    """printf FORMAT [ARG]...: format and print, reusing FORMAT while arguments remain."""
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


def cat_command(sh: Shell, args: list[str], io: IO) -> int:
    """cat [-u] [FILE|-]...: copy the files (or stdin) to stdout."""
    if isinstance(io.stdin, Stdin) and not [a for a in args if a not in ("-", "-u")]:
        # a live stdin is copied as it arrives, line by line on a terminal
        while chunk := io.stdin.read(sh.control.check):
            io.out(chunk)
        return 0
    status = 0
    for _, data in _read_inputs(sh, [a for a in args if a != "-u"], io, "cat"):
        if data is None:
            status = 1
        else:
            io.out(data)
    return status


def seq_command(sh: Shell, args: list[str], io: IO) -> int:
    """seq [FIRST [INC]] LAST: print the numbers, one a line."""
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
    for _, data in _read_inputs(sh, [f for f in files if f != "-f"], io, tool):
        if data is None:
            status = 1
            continue
        lines = data.splitlines(keepends=True)
        io.out(b"".join(lines[-count:] if tool == "tail" and count else lines[:count]))
    return status


def head_command(sh: Shell, args: list[str], io: IO) -> int:
    """head [-n N|-N] [FILE]...: the first N lines (default 10)."""
    return _head_or_tail(sh, args, io, "head")


def tail_command(sh: Shell, args: list[str], io: IO) -> int:
    """tail [-n N|-N] [-f] [FILE]...: the last N lines (default 10; ``-f`` does not follow)."""
    return _head_or_tail(sh, args, io, "tail")


def wc_command(sh: Shell, args: list[str], io: IO) -> int:
    """wc [-lwc] [FILE]...: count lines, words and bytes."""
    flags = "".join(a[1:] for a in args if a.startswith("-") and a != "-")
    files = [a for a in args if not a.startswith("-") or a == "-"]
    status = 0
    for name, data in _read_inputs(sh, files, io, "wc"):
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


def grep_command(sh: Shell, args: list[str], io: IO) -> int:
    """grep [-ivqcF] PATTERN [FILE]...: print the lines that match (a Python regex)."""
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
    for name, data in _read_inputs(sh, files, io, "grep"):
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


def _read_inputs(
    sh: Shell, args: list[str], io: IO, tool: str
) -> Iterator[tuple[str, bytes | None]]:
    """(name, data) of each input: the files named, or stdin; data None if missing."""
    if not args:
        args = ["-"]
    for arg in args:
        if arg == "-":
            if isinstance(io.stdin, Stdin):
                yield arg, io.stdin.read_all(sh.control.check)
                continue
            if io.stdin is None:
                sh.control.sleep(None)  # an open stdin that never sends anything
            yield arg, io.stdin or b""
        else:
            data = sh.ctx.fs.read(sh.resolve(arg))
            if data is None:
                if sh.ctx.fs.is_dir(sh.resolve(arg)):
                    io.err(f"{tool}: read error: Is a directory\n".encode())
                else:
                    io.err(f"{tool}: can't open '{arg}': No such file or directory\n".encode())
            yield arg, data
