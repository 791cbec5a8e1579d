"""A container's figures read from the kernel: its cgroup files and /proc.

Shared by the engine shims for the CRI metrics (:mod:`pycri.core.metrics`):
a shim says where a container runs (a pid, or a cgroup v2 directory) and
this module reads the rest. Both cgroup versions are read: v2 (one
directory) and v1 (a directory per controller, with the pressure files of
the unified hierarchy when a hybrid host mounts one). A file that is
missing or vanishes under the read (the container exited) leaves its
figure None, never an error: metrics are best effort by nature.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pycri.core.linux import read_if_present
from pycri.core.metrics import DeviceIO, Filesystem, Interface, Usage

__all__ = [
    "Cgroup",
    "filesystem",
    "net_dev",
    "overlay_upper_bytes",
    "process_counts",
]

#: v1 limits at or above this mean "no limit" (the kernel's value is page-rounded LONG_MAX)
_V1_UNLIMITED = 1 << 62
_PRESSURE = ("cpu", "memory", "io")


def _read(path: Path) -> str | None:
    try:
        return read_if_present(path)
    except OSError:  # unreadable (EIO, EACCES): no figure rather than a failed list
        return None


def _flat(text: str | None) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.stat, memory.events...)."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.strip().partition(" ")
        value = value.strip()
        if value.lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _limit_v2(text: str | None) -> int | None:
    """A v2 limit file: "max" is no limit, reported 0 as cAdvisor does."""
    if text is None:
        return None
    return 0 if text.strip() == "max" else _int(text)


def _times(value: int | None, factor: int) -> int | None:
    return None if value is None else value * factor


def _pressure(text: str | None) -> tuple[int, int] | None:
    """(some, full) totals in ns of a ``*.pressure`` file (the kernel counts µs)."""
    totals: dict[str, int] = {}
    for line in (text or "").splitlines():
        kind, *fields = line.split()
        for f in fields:
            key, _, value = f.partition("=")
            if key == "total" and value.isdigit():
                totals[kind] = int(value) * 1000
    if "some" not in totals:
        return None
    return totals["some"], totals.get("full", 0)


def _v1_limit(text: str | None) -> int | None:
    value = _int(text)
    if value is None:
        return None
    return 0 if value >= _V1_UNLIMITED or value < 0 else value


def _io_v2(text: str | None) -> list[DeviceIO]:
    out = []
    for line in (text or "").splitlines():
        device, *fields = line.split()
        major, _, minor = device.partition(":")
        values = dict(f.partition("=")[::2] for f in fields)
        if not (major.isdigit() and minor.isdigit()):
            continue
        out.append(
            DeviceIO(
                major=int(major),
                minor=int(minor),
                read_bytes=int(values.get("rbytes", 0)),
                write_bytes=int(values.get("wbytes", 0)),
                reads=int(values.get("rios", 0)),
                writes=int(values.get("wios", 0)),
            )
        )
    return out


def _blkio_v1(text: str | None) -> dict[tuple[int, int], dict[str, int]]:
    """``8:0 Read 4096`` lines, per device and operation."""
    out: dict[tuple[int, int], dict[str, int]] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0] or not parts[2].isdigit():
            continue
        major, _, minor = parts[0].partition(":")
        if major.isdigit() and minor.isdigit():
            out.setdefault((int(major), int(minor)), {})[parts[1]] = int(parts[2])
    return out


def _io_v1(service_bytes: str | None, serviced: str | None) -> list[DeviceIO]:
    sizes, counts = _blkio_v1(service_bytes), _blkio_v1(serviced)
    return [
        DeviceIO(
            major=major,
            minor=minor,
            read_bytes=sizes.get((major, minor), {}).get("Read", 0),
            write_bytes=sizes.get((major, minor), {}).get("Write", 0),
            reads=counts.get((major, minor), {}).get("Read", 0),
            writes=counts.get((major, minor), {}).get("Write", 0),
        )
        for major, minor in sorted(set(sizes) | set(counts))
    ]


def _shares_from_weight(weight: int | None) -> int | None:
    """cgroup v2's cpu.weight as v1 shares (the inverse of runc's conversion)."""
    if weight is None:
        return None
    return 2 + ((weight - 1) * 262142) // 9999


@dataclass(frozen=True)
class Cgroup:
    """One cgroup: a directory on v2, a directory per controller on v1.

    ``unified`` is the v2 directory of a v1 process on a hybrid host (for
    pressure stall figures); on v2 it is the cgroup's own directory.
    """

    dirs: Mapping[str, Path]
    v2: bool
    unified: Path | None = None

    @classmethod
    def at(cls, directory: str | Path) -> Cgroup:
        """The cgroup v2 directory ``directory``."""
        path = Path(directory)
        return cls(dirs={"": path}, v2=True, unified=path)

    @classmethod
    def of_pid(cls, pid: int, root: str = "/sys/fs/cgroup", proc: str = "/proc") -> Cgroup | None:
        """The cgroup of process ``pid`` (None when it is gone)."""
        text = _read(Path(proc) / str(pid) / "cgroup")
        if not text:
            return None
        base = Path(root)
        v2 = (base / "cgroup.controllers").exists()
        dirs: dict[str, Path] = {}
        unified: Path | None = None
        for line in text.splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            _, controllers, path = parts
            relative = path.lstrip("/")
            if not controllers:
                unified = base / relative if v2 else base / "unified" / relative
                continue
            for controller in controllers.split(","):
                if controller.startswith("name="):
                    continue
                mount = base / controller
                dirs[controller] = (mount if mount.exists() else base / controllers) / relative
        if v2:
            return cls.at(unified) if unified is not None else None
        if unified is not None and not unified.is_dir():
            unified = None
        return cls(dirs=dirs, v2=False, unified=unified)

    def _file(self, controller: str, name: str) -> str | None:
        base = self.dirs.get("" if self.v2 else controller)
        return None if base is None else _read(base / name)

    def procs(self) -> list[int]:
        text = self._file("pids", "cgroup.procs")
        return [int(p) for p in (text or "").split() if p.isdigit()]

    def threads(self) -> int | None:
        text = self._file("pids", "cgroup.threads" if self.v2 else "tasks")
        return None if text is None else len(text.split())

    def usage(self) -> Usage:
        """Everything the cgroup files say (sizes in bytes, times in ns)."""
        usage = self._usage_v2() if self.v2 else self._usage_v1()
        usage.threads = self.threads()
        if self.unified is not None:
            for resource in _PRESSURE:
                pair = _pressure(_read(self.unified / f"{resource}.pressure"))
                if pair is not None:
                    usage.pressure[resource] = pair
        return usage

    def _usage_v2(self) -> Usage:
        f = self._file
        cpu = _flat(f("", "cpu.stat"))
        memory = _flat(f("", "memory.stat"))
        events = _flat(f("", "memory.events"))
        current = _int(f("", "memory.current"))
        # no swap accounting (no memory.swap.current): none is charged, as cAdvisor says
        swap = _int(f("", "memory.swap.current"))
        quota, _, period = (f("", "cpu.max") or "").strip().partition(" ")
        kernel = memory.get("kernel")
        if kernel is None and "kernel_stack" in memory:
            kernel = memory["kernel_stack"] + memory.get("slab", 0) + memory.get("sock", 0)
        return Usage(
            cpu_usage_ns=_times(cpu.get("usage_usec"), 1000),
            cpu_user_ns=_times(cpu.get("user_usec"), 1000),
            cpu_system_ns=_times(cpu.get("system_usec"), 1000),
            cfs_periods=cpu.get("nr_periods"),
            cfs_throttled_periods=cpu.get("nr_throttled"),
            cfs_throttled_ns=_times(cpu.get("throttled_usec"), 1000),
            memory_usage=current,
            memory_max_usage=_int(f("", "memory.peak")),
            memory_working_set=(
                None if current is None else max(0, current - memory.get("inactive_file", 0))
            ),
            memory_cache=memory.get("file"),
            memory_rss=memory.get("anon"),
            memory_kernel=kernel,
            memory_mapped_file=memory.get("file_mapped"),
            memory_swap=swap if swap is not None else (0 if memory else None),
            memory_failcnt=events.get("max"),
            pgfault=memory.get("pgfault"),
            pgmajfault=memory.get("pgmajfault"),
            oom_events=events.get("oom_kill"),
            processes=_int(f("", "pids.current")),
            threads_max=_limit_v2(f("", "pids.max")),
            io=_io_v2(f("", "io.stat")),
            spec_cpu_period=_int(period) if period else None,
            spec_cpu_quota=_int(quota) if quota and quota != "max" else None,
            spec_cpu_shares=_shares_from_weight(_int(f("", "cpu.weight"))),
            spec_memory_limit=_limit_v2(f("", "memory.max")),
            spec_memory_reservation=_limit_v2(f("", "memory.low")),
            spec_memory_swap_limit=_limit_v2(f("", "memory.swap.max")),
        )

    def _usage_v1(self) -> Usage:
        f = self._file
        cpu = _flat(f("cpu", "cpu.stat"))
        memory = _flat(f("memory", "memory.stat"))
        usage = _int(f("memory", "memory.usage_in_bytes"))
        quota = _int(f("cpu", "cpu.cfs_quota_us"))
        processes = _int(f("pids", "pids.current"))
        if processes is None and "pids" in self.dirs:
            processes = len(self.procs())
        max_pids = f("pids", "pids.max")
        return Usage(
            cpu_usage_ns=_int(f("cpuacct", "cpuacct.usage")),
            cpu_user_ns=_int(f("cpuacct", "cpuacct.usage_user")),
            cpu_system_ns=_int(f("cpuacct", "cpuacct.usage_sys")),
            cfs_periods=cpu.get("nr_periods"),
            cfs_throttled_periods=cpu.get("nr_throttled"),
            cfs_throttled_ns=cpu.get("throttled_time"),
            memory_usage=usage,
            memory_max_usage=_int(f("memory", "memory.max_usage_in_bytes")),
            memory_working_set=(
                None if usage is None else max(0, usage - memory.get("total_inactive_file", 0))
            ),
            memory_cache=memory.get("total_cache"),
            memory_rss=memory.get("total_rss"),
            memory_kernel=_int(f("memory", "memory.kmem.usage_in_bytes")),
            memory_mapped_file=memory.get("total_mapped_file"),
            memory_swap=memory.get("total_swap", 0 if memory else None),
            memory_failcnt=_int(f("memory", "memory.failcnt")),
            pgfault=memory.get("total_pgfault"),
            pgmajfault=memory.get("total_pgmajfault"),
            oom_events=_flat(f("memory", "memory.oom_control")).get("oom_kill"),
            processes=processes,
            threads_max=_limit_v2(max_pids),
            io=_io_v1(
                f("blkio", "blkio.throttle.io_service_bytes_recursive"),
                f("blkio", "blkio.throttle.io_serviced_recursive"),
            ),
            spec_cpu_period=_int(f("cpu", "cpu.cfs_period_us")),
            spec_cpu_quota=quota if quota is not None and quota > 0 else None,
            spec_cpu_shares=_int(f("cpu", "cpu.shares")),
            spec_memory_limit=_v1_limit(f("memory", "memory.limit_in_bytes")),
            spec_memory_reservation=_v1_limit(f("memory", "memory.soft_limit_in_bytes")),
            spec_memory_swap_limit=_v1_limit(f("memory", "memory.memsw.limit_in_bytes")),
        )


def process_counts(pids: list[int], proc: str = "/proc") -> tuple[int, int]:
    """(open file descriptors, of which sockets) of these processes."""
    fds = sockets = 0
    for pid in pids:
        directory = f"{proc}/{pid}/fd"
        try:
            entries = os.listdir(directory)
        except OSError:
            continue  # exited, or not ours to look at
        fds += len(entries)
        for entry in entries:
            try:
                if os.readlink(f"{directory}/{entry}").startswith("socket:"):
                    sockets += 1
            except OSError:
                continue
    return fds, sockets


def net_dev(pid: int, proc: str = "/proc") -> list[Interface]:
    """Counters of every interface but ``lo`` in the network namespace of ``pid``."""
    text = _read(Path(proc) / str(pid) / "net" / "dev")
    out = []
    for line in (text or "").splitlines():
        name, sep, rest = line.partition(":")
        name = name.strip()
        fields = rest.split()
        if not sep or name == "lo" or len(fields) < 12 or not all(x.isdigit() for x in fields):
            continue
        v = [int(x) for x in fields]
        out.append(
            Interface(
                name=name,
                rx_bytes=v[0],
                rx_packets=v[1],
                rx_errors=v[2],
                rx_dropped=v[3],
                tx_bytes=v[8],
                tx_packets=v[9],
                tx_errors=v[10],
                tx_dropped=v[11],
            )
        )
    return sorted(out, key=lambda i: i.name)


def filesystem(path: str, usage_bytes: int) -> Filesystem | None:
    """The filesystem holding ``path`` (an engine's root), with a layer's ``usage_bytes``."""
    try:
        st = os.statvfs(path)
        dev = os.stat(path).st_dev
    except OSError:
        return None
    return Filesystem(
        device=f"{os.major(dev)}:{os.minor(dev)}",
        usage_bytes=usage_bytes,
        limit_bytes=st.f_blocks * st.f_frsize,
        inodes_total=st.f_files,
        inodes_free=st.f_ffree,
    )


def _upper_dir(pid: int, proc: str) -> str | None:
    """The overlay upper directory of the root filesystem ``pid`` sees."""
    for line in (_read(Path(proc) / str(pid) / "mountinfo") or "").splitlines():
        fields = line.split()
        if len(fields) < 10 or fields[4] != "/" or "-" not in fields:
            continue
        tail = fields[fields.index("-") + 1 :]  # fs type, source, super options
        if len(tail) < 3 or tail[0] != "overlay":
            continue
        for option in tail[2].split(","):
            if option.startswith("upperdir="):
                return option.removeprefix("upperdir=")
    return None


def overlay_upper_bytes(pid: int, proc: str = "/proc") -> int | None:
    """Disk usage of the writable layer of ``pid``'s overlay root, as ``du`` counts it.

    None when the root is not an overlay (or the process is gone). The walk
    costs one ``lstat`` per file the container wrote, usually a handful.
    """
    upper = _upper_dir(pid, proc)
    if upper is None:
        return None
    total = 0
    for directory, dirs, files in os.walk(upper):
        for name in [*dirs, *files]:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                continue  # removed during the walk
    return total
