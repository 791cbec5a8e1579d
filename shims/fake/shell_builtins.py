"""The fake shell's builtin commands: ``echo printf sleep exit cat env test grep``...

Each is a function ``(shell, args, io) -> status`` registered in
:attr:`Shell.BUILTINS <.shell.Shell.BUILTINS>` under its names by the
:func:`builtin` decorator, which other modules use for theirs (the network
commands in :mod:`.netcmds`, the terminal ones in :mod:`.termcmds`). The
package imports this module, so the table is full before any shell runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from .shell import IO, Shell, _Break, _Builtin, _Continue, _ExitShell, is_runnable
from .stdio import Stdin

__all__ = ["builtin"]

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
    elif args[:1] == ["-G"]:
        # busybox: the effective gid, then the other supplementary groups
        groups = [gid, *(g for g in sh.ctx.groups if g != gid)]
        io.out((" ".join(map(str, groups)) + "\n").encode())
    elif uid == 0 and gid == 0 and sh.ctx.groups == (0,):
        io.out(b"uid=0(root) gid=0(root) groups=0(root)\n")
    else:
        io.out(f"uid={uid} gid={gid} groups={','.join(map(str, sh.ctx.groups))}\n".encode())
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
