"""Builtins about stdin and the terminal: ``read``, ``tty``, ``stty``.

They make interactive sessions testable: ``stty size`` shows a resize
arrived, ``read`` takes one line of a live stdin.
"""

from __future__ import annotations

from .shell import IO, Shell
from .shell_builtins import builtin
from .stdio import Stdin

__all__: list[str] = []


@builtin("tty")
def _tty(sh: Shell, args: list[str], io: IO) -> int:
    if sh.ctx.terminal is None:
        io.out(b"not a tty\n")
        return 1
    io.out(b"/dev/pts/0\n")
    return 0


@builtin("stty")
def _stty(sh: Shell, args: list[str], io: IO) -> int:
    terminal = sh.ctx.terminal
    if terminal is None:
        io.err(b"stty: standard input: Not a tty\n")
        return 1
    if args == ["size"]:
        io.out(f"{terminal.rows} {terminal.cols}\n".encode())
    elif not args or args == ["-a"]:
        io.out(f"speed 38400 baud; rows {terminal.rows}; columns {terminal.cols};\n".encode())
    # settings (raw, -echo...) are accepted and ignored: the fake terminal stays cooked
    return 0


@builtin("read")
def _read(sh: Shell, args: list[str], io: IO) -> int:
    names = [a for a in args if not a.startswith("-")] or ["REPLY"]
    if isinstance(io.stdin, Stdin):
        raw = io.stdin.readline(sh.control.check)
    elif io.stdin is None:
        sh.control.sleep(None)  # an open stdin that never sends: read waits forever
        raw = b""
    else:
        # a fixed stdin is not consumed between commands: read sees its first line
        raw = io.stdin.split(b"\n", 1)[0] + (b"\n" if b"\n" in io.stdin else b"")
    if not raw:
        return 1
    text = raw.decode(errors="replace").rstrip("\n")
    fields = text.split(None, len(names) - 1)
    for index, name in enumerate(names):
        sh.vars[name] = fields[index] if index < len(fields) else ""
    return 0 if raw.endswith(b"\n") else 1
