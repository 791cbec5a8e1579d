"""Builtins that change the shell itself: variables, options, traps, flow, directory.

``true false : wait exit exec break continue export unset set shift trap cd pwd``.
"""

from __future__ import annotations

from pycri_shims.fake.sh.context import IO
from pycri_shims.fake.sh.control import BreakLoop, ContinueLoop, ExitShell
from pycri_shims.fake.sh.interpreter import Shell

__all__ = [
    "break_command",
    "cd_command",
    "continue_command",
    "exec_command",
    "exit_command",
    "export_command",
    "false_command",
    "pwd_command",
    "set_command",
    "shift_command",
    "trap_command",
    "true_command",
    "unset_command",
]


def true_command(sh: Shell, args: list[str], io: IO) -> int:
    """true, :, wait: do nothing, successfully (``wait``: there are no background jobs)."""
    return 0


def false_command(sh: Shell, args: list[str], io: IO) -> int:
    """false: do nothing, unsuccessfully."""
    return 1


def exit_command(sh: Shell, args: list[str], io: IO) -> int:
    """exit [N]: end the shell with status N (default: the last command's)."""
    if not args:
        raise ExitShell(sh.status)
    try:
        code = int(args[0])
    except ValueError:
        io.err(f"{sh.name}: exit: Illegal number: {args[0]}\n".encode())
        raise ExitShell(2) from None
    raise ExitShell(code & 0xFF)


def exec_command(sh: Shell, args: list[str], io: IO) -> int:
    """exec [COMMAND [ARG]...]: run the command, then end the shell with its status."""
    if not args:
        return 0
    raise ExitShell(sh.run_command(args, io))


def break_command(sh: Shell, args: list[str], io: IO) -> int:
    """break: leave the innermost loop."""
    raise BreakLoop


def continue_command(sh: Shell, args: list[str], io: IO) -> int:
    """continue: start the next round of the innermost loop."""
    raise ContinueLoop


def export_command(sh: Shell, args: list[str], io: IO) -> int:
    """export [-p] NAME[=VALUE]...: pass the variables to the commands the shell runs."""
    for arg in args:
        if arg == "-p":
            continue
        name, eq, value = arg.partition("=")
        if eq:
            sh.vars[name] = value
        sh.exported.add(name)
    return 0


def unset_command(sh: Shell, args: list[str], io: IO) -> int:
    """unset NAME...: remove the variables."""
    for name in args:
        if not name.startswith("-"):
            sh.vars.pop(name, None)
            sh.exported.discard(name)
    return 0


def set_command(sh: Shell, args: list[str], io: IO) -> int:
    """set [-e|+e] [--] [ARG]...: ``set -e`` (errexit) and the positional parameters."""
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


def shift_command(sh: Shell, args: list[str], io: IO) -> int:
    """shift [N]: drop the first N positional parameters (default 1)."""
    count = int(args[0]) if args and args[0].isdigit() else 1
    if count > len(sh.positional):
        return 1
    sh.positional = sh.positional[count:]
    return 0


def trap_command(sh: Shell, args: list[str], io: IO) -> int:
    """trap ACTION|- SIGNAL...: run ACTION on TERM (SIGTERM), INT or EXIT; ``-`` resets."""
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


def cd_command(sh: Shell, args: list[str], io: IO) -> int:
    """cd [DIR]: change the working directory (default $HOME)."""
    target = args[0] if args else sh.vars.get("HOME", "/")
    path = sh.resolve(target)
    if sh.ctx.fs.is_file(path):
        io.err(f"{sh.name}: cd: can't cd to {target}: Not a directory\n".encode())
        return 1
    sh.cwd = path
    return 0


def pwd_command(sh: Shell, args: list[str], io: IO) -> int:
    """pwd: print the working directory."""
    io.out(f"{sh.cwd}\n".encode())
    return 0
