"""Programs of the fake's images besides the builtins: shells, ``pause``, entrypoint wrappers.

``sh``/``ash``/``bash``/``dash`` run ``-c SCRIPT``, a script file, or the
commands of their stdin (interactively, with a prompt on a terminal);
``pause`` and the server daemons (:mod:`pycri_shims.fake.sh.network_commands`)
block until stopped and exit 0 on a plain SIGTERM; ``docker-entrypoint.sh``,
``tini`` and ``dumb-init`` run their arguments.
"""

from __future__ import annotations

from pycri_shims.fake.sh.context import IO
from pycri_shims.fake.sh.control import (
    BreakLoop,
    ContinueLoop,
    ExitShell,
    ExpansionError,
    Interrupted,
    Terminated,
)
from pycri_shims.fake.sh.interpreter import Command, Shell
from pycri_shims.fake.sh.lexer import ShellSyntaxError
from pycri_shims.fake.sh.parser import parse
from pycri_shims.fake.stdio import Stdin

__all__ = [
    "SHELLS",
    "WRAPPERS",
    "entrypoint_wrapper",
    "interact",
    "pause",
    "serve_until_stopped",
    "shell",
]

SHELLS = ("sh", "ash", "bash", "dash")
WRAPPERS = ("docker-entrypoint.sh", "tini", "dumb-init")


def shell(name: str) -> Command:
    """The shell program ``name`` (its name shows in its messages and ``$0``)."""

    def run(sh: Shell, args: list[str], io: IO) -> int:
        return _shell(sh, name, args, io)

    run.__doc__ = f"{name} [-e] [-c SCRIPT [NAME [ARG]...] | FILE [ARG]...]: a shell."
    return run


def _shell(sh: Shell, name: str, args: list[str], io: IO) -> int:
    """Run ``name`` with ``args`` as busybox sh would: ``-c``, a file, or stdin."""
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
        data = sh.ctx.fs.read(sh.resolve(rest[0]))
        if data is None:
            io.err(f"{name}: can't open '{rest[0]}': No such file or directory\n".encode())
            return 127
        script, shell_name, positional = data.decode(errors="replace"), rest[0], rest[1:]
    else:
        # an interactive shell reads commands from stdin until it closes
        if isinstance(io.stdin, Stdin):
            child = sh.child(name, [])
            child.errexit = errexit
            return interact(child, io.stdin, io)
        if io.stdin is None:
            sh.control.sleep(None)
        script, shell_name, positional = (io.stdin or b"").decode(errors="replace"), name, []
    child = sh.child(shell_name, positional)
    child.errexit = errexit
    return child.run_script(script, IO(io.out, io.err, b""))


def serve_until_stopped(sh: Shell) -> int:
    """Block as a server daemon does; a plain SIGTERM ends it cleanly (0)."""
    try:
        sh.control.sleep(None)
    except Terminated:
        if sh.control.graceful:
            raise Terminated(0) from None  # a clean shutdown on SIGTERM
        raise
    return 0


def pause(sh: Shell, args: list[str], io: IO) -> int:
    """pause: the sandbox's process; sleeps until stopped (exit 0 on SIGTERM)."""
    return serve_until_stopped(sh)


def entrypoint_wrapper(sh: Shell, args: list[str], io: IO) -> int:
    """tini|dumb-init|docker-entrypoint.sh [--] COMMAND [ARG]...: run the command."""
    # these wrappers set things up, then exec their arguments
    args = args[1:] if args[:1] == ["--"] else args
    return sh.run_command(args, io) if args else 0


# -- interactive ----------------------------------------------------------------


def _prompt(sh: Shell, continuing: bool) -> bytes:
    if continuing:
        return b"> "
    home = sh.vars.get("HOME", "")
    where = "~" + sh.cwd[len(home) :] if home and sh.cwd.startswith(home) else sh.cwd
    return f"{where} {'#' if sh.ctx.uid == 0 else '$'} ".encode()


def interact(sh: Shell, stdin: Stdin, io: IO) -> int:
    """Read and run commands from a live stdin, line by line, until EOF or ``exit``.

    On a terminal it prompts (``/ # ``, ``> `` for a continued line) and
    survives ``^C``, as busybox ``sh`` does.
    """
    tty = sh.ctx.terminal is not None
    buffer = ""
    while True:
        if tty:
            io.out(_prompt(sh, bool(buffer)))
        try:
            line = stdin.readline(sh.control.check)
        except Interrupted:
            buffer, sh.status = "", 130
            continue
        if not line:
            if buffer:
                io.err(f"{sh.name}: syntax error: unexpected end of file\n".encode())
                sh.status = 2
            break
        buffer += line.decode(errors="replace")
        try:
            tree = parse(buffer)
        except ShellSyntaxError as err:
            if not _incomplete(err):
                io.err(f"{sh.name}: {err}\n".encode())
                buffer, sh.status = "", 2
            continue
        buffer = ""
        try:
            sh.status = sh.exec_node(tree, IO(io.out, io.err, stdin))
        except ExitShell as done:
            sh.status = done.status & 0xFF
            break
        except Interrupted:
            sh.status = 130
        except ExpansionError as err:
            io.err(f"{sh.name}: {err.message}\n".encode())
            sh.status = err.status
        except (BreakLoop, ContinueLoop):
            pass
    exit_trap = sh.traps.pop("EXIT", "")
    if exit_trap:
        sh.run_trap(exit_trap, io)
    return sh.status & 0xFF


def _incomplete(err: ShellSyntaxError) -> bool:
    """Whether more lines could complete the script (an open loop, quote or group)."""
    message = str(err)
    return "end of file" in message or "unterminated" in message or "missing" in message
