"""The fake shell's command table: explicit, documented, and built without side effects."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import pytest

from pycri_shims.fake.processes import run
from pycri_shims.fake.sh.commands import COMMANDS, is_runnable
from pycri_shims.fake.sh.context import IO, ProcessContext
from pycri_shims.fake.sh.control import Control
from pycri_shims.fake.sh.interpreter import Shell

FAKE = Path(__file__).resolve().parents[2] / "shims" / "fake"
SH = FAKE / "sh"

#: every name the fake runs; a command dropped or added shows here
NAMES = {
    *("true", ":", "wait", "false", "exit", "exec", "break", "continue", "export", "unset"),
    *("set", "shift", "trap", "cd", "pwd", "echo", "printf", "cat", "seq", "head", "tail"),
    *("wc", "grep", "sleep", "env", "printenv", "hostname", "id", "whoami", "date", "uname"),
    *("touch", "rm", "mkdir", "test", "[", "read", "tty", "stty", "nginx", "httpd-foreground"),
    *("httpd", "redis-server", "postgres", "mysqld", "memcached", "mongod", "etcd", "coredns"),
    *("nc", "netcat", "wget", "sh", "ash", "bash", "dash", "pause", "docker-entrypoint.sh"),
    *("tini", "dumb-init"),
}


def test_the_table_holds_every_command_and_nothing_else() -> None:
    assert set(COMMANDS) == NAMES
    assert isinstance(COMMANDS, MappingProxyType)  # read-only: nothing adds to it later


def test_every_command_says_how_it_is_used() -> None:
    for name, command in COMMANDS.items():
        doc = (command.__doc__ or "").strip()
        assert doc, f"{name} has no docstring"
        # the usage line names the command (a function serving several names names one)
        assert ":" in doc.splitlines()[0], f"{name}: {doc!r} has no 'usage: what it does' line"


def test_is_runnable_is_the_table() -> None:
    for name in COMMANDS:
        assert is_runnable(name)
        assert is_runnable(f"/usr/bin/{name}")
    assert not is_runnable("curl")
    assert not is_runnable("bin/echo")  # a relative path is not looked up


def test_a_shell_runs_only_the_commands_it_was_given() -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    shell = Shell(ProcessContext(), Control(), commands={})
    assert shell.run_script("echo hi", IO(out.append, err.append)) == 127
    assert out == []
    assert err == [b"sh: echo: not found\n"]
    assert run(["sh", "-c", "echo hi"]).stdout == b"hi\n"  # the real table


def test_importing_the_shell_registers_nothing() -> None:
    # the interpreter keeps no table of its own: a shell runs the one it is given
    assert not [v for v in vars(Shell).values() if isinstance(v, Mapping)]
    with pytest.raises(TypeError):
        Shell(ProcessContext(), Control())  # type: ignore[call-arg]
    # every command module imports without adding to anything: the table stays as built
    before = dict(COMMANDS)
    for module in sorted(SH.glob("*.py")):
        name = "" if module.stem == "__init__" else f".{module.stem}"
        importlib.import_module(f"pycri_shims.fake.sh{name}")
    assert dict(COMMANDS) == before


def _imports(path: Path) -> list[ast.ImportFrom]:
    tree = ast.parse(path.read_text(), str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]


def test_the_fake_imports_absolutely_and_nothing_private_across_modules() -> None:
    files = sorted(FAKE.rglob("*.py"))
    assert files
    for path in files:
        for node in _imports(path):
            where = f"{path.relative_to(FAKE)}:{node.lineno}"
            assert node.level == 0, f"{where}: relative import"
            if (node.module or "").startswith("pycri"):
                names = [a.name for a in node.names]
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                assert not private, f"{where}: imports private {private} from {node.module}"
