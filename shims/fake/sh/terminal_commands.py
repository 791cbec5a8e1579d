"""Commands about stdin and the terminal: ``read``, ``tty``, ``stty``.

They make interactive sessions testable: ``stty size`` shows a resize
arrived, ``read`` takes one line of a live stdin.
"""

from __future__ import annotations

from pycri_shims.fake.sh.context import IO
from pycri_shims.fake.sh.interpreter import Shell
from pycri_shims.fake.stdio import Stdin

__all__ = ["read_command", "stty_command", "tty_command"]


def tty_command(sh: Shell, args: list[str], io: IO) -> int:
    """tty: the terminal's name, or ``not a tty`` (status 1)."""
    if sh.ctx.terminal is None:
        io.out(b"not a tty\n")
        return 1
    io.out(b"/dev/pts/0\n")
    return 0


def stty_command(sh: Shell, args: list[str], io: IO) -> int:
    """stty [size|-a|SETTING...]: the terminal's size; settings are ignored."""
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


def read_command(sh: Shell, args: list[str], io: IO) -> int:
    """read [NAME]...: one line of stdin into the variables (default REPLY)."""
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
