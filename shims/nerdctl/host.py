"""Facts read from files instead of nerdctl processes: runc state, cgroups, /proc.

nerdctl 1.7 reports neither when a container started nor whether it was
OOM-killed, and every nerdctl call is a process; these files answer such
questions for the price of a read. All of them are the runtime's own
records (runc's state file, the kernel's cgroups), so no state is kept here.
The shim always passes ``--cgroup-manager cgroupfs``, so a container's
cgroup is ``/<namespace>/<id>`` in every hierarchy.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from pycri.core.linux import read_if_present
from pycri.core.logs import parse_timestamp

__all__ = [
    "Cgroups",
    "CpuMemory",
    "RuncState",
    "cgroup_parent",
    "container_pids",
    "descendants",
    "exec_id_of_client",
    "exec_pid",
    "exec_pids",
    "exec_processes",
    "kill_pids",
    "net_dev",
    "running",
    "task_bundle",
]

#: the FIFOs containerd's client library makes for an exec: ``<dir>/<exec id>-stdout``
_EXEC_FIFO = re.compile(r"/(exec-[0-9a-f]+)-std(?:in|out|err)$")


def _read(path: Path) -> str | None:
    """A runtime file's text; None when its container, cgroup or process is gone."""
    try:
        # a cgroup removed under the read answers ENODEV: gone, like a missing file
        return read_if_present(path)
    except PermissionError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 on (None: no such process)."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if stat is None or ")" not in stat:
        return None
    # the command name (field 2) may contain spaces: split after its ')'
    return stat.rsplit(")", 1)[1].split()


def _start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks after boot)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None and len(fields) > 1 else None


@dataclass(frozen=True)
class RuncState:
    """runc's ``state.json`` of a container's current task."""

    started_ns: int
    init_pid: int
    init_start_ticks: int

    @classmethod
    def load(cls, runc_root: str, namespace: str, container_id: str) -> RuncState | None:
        """None when the container has no task (never started, or removed)."""
        raw = _read(Path(runc_root) / namespace / container_id / "state.json")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return cls(
                started_ns=parse_timestamp(data["created"]),
                init_pid=int(data["init_process_pid"]),
                init_start_ticks=int(data["init_process_start"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        """Whether the init process runs (a reused pid has another start time)."""
        return _start_ticks(self.init_pid) == self.init_start_ticks


@dataclass(frozen=True)
class CpuMemory:
    cpu_ns: int | None
    memory_usage: int | None
    working_set: int | None
    rss: int | None
    page_faults: int | None
    major_page_faults: int | None


def _stat_map(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


class Cgroups:
    """Per-container cgroup files under ``root`` (v1 or v2, cgroupfs layout).

    A container's cgroup is ``<parent>/<id>``; the parent is the pod's
    cgroup_parent when the kubelet gave one, else ``/<namespace>``
    (nerdctl's default). Methods take ``parent`` ("" for the default).
    """

    def __init__(self, root: str, namespace: str) -> None:
        self.root = Path(root)
        self.namespace = namespace
        self.v2 = (self.root / "cgroup.controllers").exists()

    def _dir(self, controller: str, container_id: str, parent: str = "") -> Path:
        relative = (parent or self.namespace).strip("/")
        base = self.root if self.v2 else self.root / controller
        return base / relative / container_id

    def oom_killed(self, container_id: str, parent: str = "") -> bool:
        """The kernel's OOM-kill counter for the container (kept until it is removed)."""
        if self.v2:
            text = _read(self._dir("", container_id, parent) / "memory.events")
        else:
            text = _read(self._dir("memory", container_id, parent) / "memory.oom_control")
        return _stat_map(text).get("oom_kill", 0) > 0

    def procs(self, container_id: str, parent: str = "") -> list[int]:
        text = _read(self._dir("pids", container_id, parent) / "cgroup.procs")
        return [int(p) for p in (text or "").split()]

    def usage(self, container_id: str, parent: str = "") -> CpuMemory:
        if self.v2:
            base = self._dir("", container_id, parent)
            cpu = _stat_map(_read(base / "cpu.stat")).get("usage_usec")
            memory = _stat_map(_read(base / "memory.stat"))
            usage = _int(_read(base / "memory.current"))
            inactive = memory.get("inactive_file", 0)
            return CpuMemory(
                cpu_ns=cpu * 1000 if cpu is not None else None,
                memory_usage=usage,
                working_set=max(0, usage - inactive) if usage is not None else None,
                rss=memory.get("anon"),
                page_faults=memory.get("pgfault"),
                major_page_faults=memory.get("pgmajfault"),
            )
        cpu = _int(_read(self._dir("cpuacct", container_id, parent) / "cpuacct.usage"))
        base = self._dir("memory", container_id, parent)
        usage = _int(_read(base / "memory.usage_in_bytes"))
        memory = _stat_map(_read(base / "memory.stat"))
        inactive = memory.get("total_inactive_file", 0)
        return CpuMemory(
            cpu_ns=cpu,
            memory_usage=usage,
            working_set=max(0, usage - inactive) if usage is not None else None,
            rss=memory.get("total_rss"),
            page_faults=memory.get("total_pgfault"),
            major_page_faults=memory.get("total_pgmajfault"),
        )


def running(pid: int) -> bool:
    """Whether ``pid`` exists and has not exited (a zombie has)."""
    fields = _stat_fields(pid)
    if not fields:
        return False
    return fields[0] != "Z"


def _offspring(roots: AbstractSet[int], parents: dict[int, int | None]) -> set[int]:
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def descendants(root: int, pids: Iterable[int]) -> set[int]:
    """Those of ``pids`` that descend from ``root`` (``root`` not included)."""
    return _offspring({root}, {pid: _ppid(pid) for pid in pids}) - {root}


def task_bundle(init_pid: int, container_id: str) -> Path | None:
    """The container's task directory in containerd's state (``.../<namespace>/<id>``).

    Found without configuration: the containerd shim, the init's parent,
    runs in the bundle of the first container it serves, and bundles are
    siblings.
    """
    shim = _ppid(init_pid)
    if shim is None:
        return None
    try:
        cwd = Path(os.readlink(f"/proc/{shim}/cwd"))
    except OSError:
        return None
    bundle = cwd.parent / container_id
    return bundle if bundle.is_dir() else None


def exec_id_of_client(client_pid: int) -> str | None:
    """The exec id of the process a running ``nerdctl exec`` started (None before it made one).

    The client holds the exec's FIFOs open, and containerd names them after
    the exec id, which nerdctl draws at random and never prints.
    """
    try:
        fds = os.listdir(f"/proc/{client_pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{client_pid}/fd/{fd}")
        except OSError:
            continue
        found = _EXEC_FIFO.search(target)
        if found:
            return found[1]
    return None


def exec_pid(bundle: Path, exec_id: str) -> int | None:
    """The pid the runc shim recorded for an exec (None until the process started)."""
    return _int(_read(bundle / f"{exec_id}.pid"))


def cgroup_parent(runc: RuncState, controller: str) -> str:
    """The init's cgroup in ``controller`` ("" on v2), minus the container's own directory."""
    try:
        text = _read(Path(f"/proc/{runc.init_pid}/cgroup"))
    except OSError:
        text = None
    for line in (text or "").splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or controllers == controller:
            return path.rsplit("/", 1)[0]
    return ""


def _pids_parent(cgroups: Cgroups, runc: RuncState) -> str:
    return cgroup_parent(runc, "" if cgroups.v2 else "pids")


def container_pids(cgroups: Cgroups, container_id: str, runc: RuncState) -> list[int]:
    """Every process in the container's cgroup."""
    return cgroups.procs(container_id, _pids_parent(cgroups, runc))


def exec_pids(
    cgroups: Cgroups,
    container_id: str,
    runc: RuncState | None,
    exclude: AbstractSet[int] = frozenset(),
) -> set[int]:
    """Processes exec'd into the container (see :func:`exec_processes`)."""
    if runc is None:
        return set()
    parent = _pids_parent(cgroups, runc)
    return exec_processes(cgroups, container_id, runc.init_pid, parent, exclude)


def exec_processes(
    cgroups: Cgroups,
    container_id: str,
    init_pid: int,
    parent: str = "",
    exclude: AbstractSet[int] = frozenset(),
) -> set[int]:
    """Processes containerd exec'd into the container, with their descendants.

    An exec'd process is a child of the container's shim (the init's
    parent), unlike anything the container forked itself. Exec'd
    processes in ``exclude`` (and their descendants) are left out.
    """
    shim = _ppid(init_pid)
    if shim is None:
        return set()
    pids = set(cgroups.procs(container_id, parent)) - {init_pid}
    parents = {pid: _ppid(pid) for pid in pids}
    roots = {pid for pid, parent in parents.items() if parent == shim} - exclude
    return roots | _offspring(roots, parents)


def kill_pids(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def net_dev(pid: int, interface: str = "eth0") -> tuple[int, int, int, int] | None:
    """(rx bytes, rx errors, tx bytes, tx errors) of ``interface`` in pid's netns."""
    text = _read(Path(f"/proc/{pid}/net/dev"))
    for line in (text or "").splitlines():
        name, sep, rest = line.partition(":")
        if sep and name.strip() == interface:
            f = [int(x) for x in rest.split()]
            return f[0], f[2], f[8], f[10]
    return None
