"""ExecSync: run a command in a container, collect its output, honour the timeout.

Docker has no API to kill an exec'd process. When the timeout passes, the
process (and its descendants) are killed by host pid (from ``exec inspect``)
after checking, through /proc/<pid>/cgroup, that it really belongs to the
container; that needs the shim on the Docker host, which is how the CRI is
deployed. Otherwise the process is left running and a warning is logged.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.errors import DeadlineExceededError
from pycri_shims.docker.connection import DockerConnection
from pycri_shims.docker.errors import translate
from pycri_shims.docker.streams import STDERR, STDOUT, frames, open_stream, response_socket

__all__ = ["MAX_OUTPUT", "exec_exit_code", "exec_sync", "kill_exec", "kill_process_tree"]

log = logging.getLogger(__name__)

#: bytes kept per stream (more is dropped, as containerd does): both fit a 16 MiB reply
MAX_OUTPUT = 8 * 1024 * 1024
_EXIT_CODE_WAIT = 2.0


def exec_sync(
    conn: DockerConnection, container_id: str, cmd: Sequence[str], timeout: int
) -> cri.ExecSyncResponse:
    what = f"exec in container {container_id[:13]}"
    deadline = time.monotonic() + timeout if timeout > 0 else None
    with conn.errors(what):
        api = conn.api
        exec_id = api.exec_create(container_id, list(cmd), stdout=True, stderr=True)["Id"]
        # No "Upgrade" header: Docker then answers 200 and streams until the
        # process ends, which urllib3 reads with its own buffering.
        response = open_stream(
            api,
            "POST",
            f"/exec/{exec_id}/start",
            body={"Detach": False, "Tty": False},
            read_timeout=float(timeout) if timeout > 0 else None,
        )
    output = {STDOUT: bytearray(), STDERR: bytearray()}
    sock = response_socket(response)
    try:
        framed = frames(response)
        while True:
            if deadline is not None and sock is not None:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                stream, payload = next(framed)
            except StopIteration:
                break
            except Exception as err:
                if deadline is not None and time.monotonic() >= deadline - 0.05:
                    kill_exec(conn, exec_id, container_id)
                    raise DeadlineExceededError(
                        f"{what}: {cmd[0]!r} did not finish within {timeout}s and was killed"
                    ) from err
                raise translate(err, what, conn.base_url) or err from err
            buffer = output.get(stream)
            if buffer is not None and len(buffer) < MAX_OUTPUT:
                buffer += payload[: MAX_OUTPUT - len(buffer)]
    finally:
        response.close()
    return cri.ExecSyncResponse(
        stdout=bytes(output[STDOUT]),
        stderr=bytes(output[STDERR]),
        exit_code=exec_exit_code(conn, exec_id, what),
    )


def exec_exit_code(conn: DockerConnection, exec_id: str, what: str) -> int:
    """The exec's exit code (-1 if Docker still has none after a moment)."""
    # The stream can end a moment before Docker records the exit code.
    give_up = time.monotonic() + _EXIT_CODE_WAIT
    while True:
        with conn.errors(what):
            info = conn.api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        if time.monotonic() > give_up:
            return -1
        time.sleep(0.01)


def kill_exec(
    conn: DockerConnection, exec_id: str, container_id: str, why: str = "timed-out"
) -> None:
    """SIGKILL the exec's process tree if it still runs (Docker cannot kill an exec)."""
    try:
        with conn.errors(f"inspecting a {why} exec"):
            info = conn.api.exec_inspect(exec_id)
    except Exception as err:
        log.warning("cannot kill the %s exec %s: %s", why, exec_id[:13], err)
        return
    pid = int(info.get("Pid") or 0)
    if info.get("Running") and pid > 0 and not kill_process_tree(pid, container_id):
        log.warning(
            "the %s exec %s (host pid %d) in %s is left running: it is not visible from this host",
            why,
            exec_id[:13],
            pid,
            container_id[:13],
        )


def kill_process_tree(pid: int, container_id: str, proc: str = "/proc") -> bool:
    """SIGKILL ``pid`` and its descendants if it runs in ``container_id``'s cgroup."""
    try:
        cgroups = Path(proc, str(pid), "cgroup").read_text()
    except OSError:
        return False
    if container_id not in cgroups:
        return False
    children: dict[int, list[int]] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields follow the last ")"
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    doomed, pending = [], [pid]
    while pending:
        current = pending.pop()
        doomed.append(current)
        pending.extend(children.get(current, []))
    for victim in doomed:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True
