"""Commands about the process and its container: time, environment, identity, files, tests.

``sleep env printenv hostname id whoami date uname touch rm mkdir test [``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pycri_shims.fake.sh.context import IO
from pycri_shims.fake.sh.interpreter import Shell

__all__ = [
    "bracket_command",
    "date_command",
    "env_command",
    "hostname_command",
    "id_command",
    "mkdir_command",
    "printenv_command",
    "rm_command",
    "sleep_command",
    "test_command",
    "touch_command",
    "uname_command",
    "whoami_command",
]

_SLEEP_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(text: str) -> float | None:
    if text.lower() in ("inf", "infinity"):
        return None
    unit = _SLEEP_UNITS.get(text[-1:], 0.0)
    number = text[:-1] if unit else text
    value = float(number)
    if value < 0 or value != value:
        raise ValueError(text)
    return value * (unit or 1.0)


def sleep_command(sh: Shell, args: list[str], io: IO) -> int:
    """sleep DURATION...: wait the sum of the durations (``s m h d`` suffixes, ``inf``)."""
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


def _exported(sh: Shell) -> dict[str, str]:
    return {k: v for k, v in sh.vars.items() if k in sh.exported}


def env_command(sh: Shell, args: list[str], io: IO) -> int:
    """env [-i] [NAME=VALUE]... [COMMAND [ARG]...]: print the environment or run in one."""
    env = _exported(sh)
    if args[:1] in (["-i"], ["-"]):
        env, args = {}, args[1:]
    while args and "=" in args[0]:
        key, _, value = args.pop(0).partition("=")
        env[key] = value
    if args:  # env NAME=VALUE... COMMAND runs the command with that environment
        child = Shell(
            sh.ctx, sh.control, commands=sh.commands, name=sh.name, variables=env, cwd=sh.cwd
        )
        return child.run_command(list(args), io)
    io.out("".join(f"{k}={v}\n" for k, v in env.items()).encode())
    return 0


def printenv_command(sh: Shell, args: list[str], io: IO) -> int:
    """printenv [NAME]...: print the environment, or the named variables' values."""
    env = _exported(sh)
    if not args:
        io.out("".join(f"{k}={v}\n" for k, v in env.items()).encode())
        return 0
    for name in args:
        if name in env:
            io.out(f"{env[name]}\n".encode())
    return 0 if all(name in env for name in args) else 1


def hostname_command(sh: Shell, args: list[str], io: IO) -> int:
    """hostname [-i]: the pod's hostname (``-i``: its IP)."""
    if args and args[0] == "-i":
        io.out(f"{sh.ctx.ip or '127.0.0.1'}\n".encode())
    else:
        io.out(f"{sh.ctx.hostname}\n".encode())
    return 0


def id_command(sh: Shell, args: list[str], io: IO) -> int:
    """id [-u|-un|-g|-G]: the process's user and groups."""
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


def whoami_command(sh: Shell, args: list[str], io: IO) -> int:
    """whoami: the process's user name."""
    io.out(f"{'root' if sh.ctx.uid == 0 else sh.ctx.uid}\n".encode())
    return 0


def date_command(sh: Shell, args: list[str], io: IO) -> int:
    """date [+FORMAT]: the time, in UTC."""
    fmt = "%a %b %e %H:%M:%S UTC %Y"
    for arg in args:
        if arg.startswith("+"):
            fmt = arg[1:]
    now = time.time()
    fmt = fmt.replace("%s", str(int(now))).replace("%N", f"{time.time_ns() % 10**9:09d}")
    io.out((time.strftime(fmt, time.gmtime(now)) + "\n").encode())
    return 0


def uname_command(sh: Shell, args: list[str], io: IO) -> int:
    """uname [-a|-r|-m|-n]: the (simulated) kernel."""
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


def touch_command(sh: Shell, args: list[str], io: IO) -> int:
    """touch FILE...: create the files that do not exist."""
    for arg in args:
        if not arg.startswith("-"):
            path = sh.resolve(arg)
            if not sh.ctx.fs.is_file(path):
                sh.ctx.fs.write(path, b"")
    return 0


def rm_command(sh: Shell, args: list[str], io: IO) -> int:
    """rm [-f] FILE...: remove the files."""
    force = any(a.startswith("-") and "f" in a for a in args)
    status = 0
    for arg in args:
        if arg.startswith("-"):
            continue
        if not sh.ctx.fs.remove(sh.resolve(arg)) and not force:
            io.err(f"rm: can't remove '{arg}': No such file or directory\n".encode())
            status = 1
    return status


def mkdir_command(sh: Shell, args: list[str], io: IO) -> int:
    """mkdir [-p] DIR...: create the directories."""
    for arg in args:
        if not arg.startswith("-"):
            sh.ctx.fs.mkdir(sh.resolve(arg))
    return 0


def test_command(sh: Shell, args: list[str], io: IO) -> int:
    """test EXPR: the status of a unary or binary test (``-f FILE``, ``A = B``, ``N -lt M``...)."""
    return _test_impl(sh, args, io, bracket=False)


def bracket_command(sh: Shell, args: list[str], io: IO) -> int:
    """[ EXPR ]: the same as test."""
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
        fs, path = sh.ctx.fs, sh.resolve(value)
        unary: dict[str, Callable[[], bool]] = {
            "-z": lambda: value == "",
            "-n": lambda: value != "",
            "-f": lambda: fs.is_file(path),
            "-e": lambda: fs.is_file(path) or fs.is_dir(path),
            "-d": lambda: fs.is_dir(path),
            "-s": lambda: bool(fs.read(path)),
            "-r": lambda: fs.is_file(path) or fs.is_dir(path),
            "-w": lambda: fs.is_file(path) or fs.is_dir(path),
            "-x": lambda: sh.can_run(value),
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
