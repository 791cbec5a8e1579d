"""The fake shell's table of commands: every name a simulated process can run.

:data:`COMMANDS` maps each name to its implementation, ``(shell, args, io) ->
status``; :class:`~pycri_shims.fake.sh.interpreter.Shell` runs a command by
looking its name up here (the last component of ``/bin/NAME`` too), and a name
that is not here is ``sh: NAME: not found`` (127). Building the table imports
the modules that implement the commands and registers nothing anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pycri_shims.fake.sh.interpreter import Command, program_name
from pycri_shims.fake.sh.network_commands import (
    QUIET_PORTS,
    apache_command,
    httpd_command,
    nc_command,
    nginx_command,
    quiet_daemon,
    redis_command,
    wget_command,
)
from pycri_shims.fake.sh.programs import SHELLS, WRAPPERS, entrypoint_wrapper, pause, shell
from pycri_shims.fake.sh.shell_commands import (
    break_command,
    cd_command,
    continue_command,
    exec_command,
    exit_command,
    export_command,
    false_command,
    pwd_command,
    set_command,
    shift_command,
    trap_command,
    true_command,
    unset_command,
)
from pycri_shims.fake.sh.system_commands import (
    bracket_command,
    date_command,
    env_command,
    hostname_command,
    id_command,
    mkdir_command,
    printenv_command,
    rm_command,
    sleep_command,
    test_command,
    touch_command,
    uname_command,
    whoami_command,
)
from pycri_shims.fake.sh.terminal_commands import read_command, stty_command, tty_command
from pycri_shims.fake.sh.text_commands import (
    cat_command,
    echo_command,
    grep_command,
    head_command,
    printf_command,
    seq_command,
    tail_command,
    wc_command,
)

__all__ = ["COMMANDS", "is_runnable"]

COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        # the shell itself (shell_commands.py)
        "true": true_command,
        ":": true_command,
        "wait": true_command,
        "false": false_command,
        "exit": exit_command,
        "exec": exec_command,
        "break": break_command,
        "continue": continue_command,
        "export": export_command,
        "unset": unset_command,
        "set": set_command,
        "shift": shift_command,
        "trap": trap_command,
        "cd": cd_command,
        "pwd": pwd_command,
        # text (text_commands.py)
        "echo": echo_command,
        "printf": printf_command,
        "cat": cat_command,
        "seq": seq_command,
        "head": head_command,
        "tail": tail_command,
        "wc": wc_command,
        "grep": grep_command,
        # the process and its container (system_commands.py)
        "sleep": sleep_command,
        "env": env_command,
        "printenv": printenv_command,
        "hostname": hostname_command,
        "id": id_command,
        "whoami": whoami_command,
        "date": date_command,
        "uname": uname_command,
        "touch": touch_command,
        "rm": rm_command,
        "mkdir": mkdir_command,
        "test": test_command,
        "[": bracket_command,
        # stdin and the terminal (terminal_commands.py)
        "read": read_command,
        "tty": tty_command,
        "stty": stty_command,
        # servers and clients on the pod's network (network_commands.py)
        "nginx": nginx_command,
        "httpd-foreground": apache_command,
        "httpd": httpd_command,
        "redis-server": redis_command,
        **{name: quiet_daemon(name) for name in QUIET_PORTS},
        "nc": nc_command,
        "netcat": nc_command,
        "wget": wget_command,
        # programs (programs.py)
        **{name: shell(name) for name in SHELLS},
        "pause": pause,
        **{name: entrypoint_wrapper for name in WRAPPERS},
    }
)


def is_runnable(program: str) -> bool:
    """Whether the fake can run ``program`` as a process (a command of the table)."""
    name = program_name(program)
    return name is not None and name in COMMANDS
