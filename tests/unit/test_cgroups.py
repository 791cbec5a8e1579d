"""pycri.core.cgroups against fixture trees shaped like the kernel's files (v1 and v2)."""

from __future__ import annotations

import os
from pathlib import Path

from pycri.core.cgroups import (
    Cgroup,
    filesystem,
    net_dev,
    overlay_upper_bytes,
    process_counts,
)
from pycri.core.metrics import DeviceIO, Interface

CID = "0123abcd"


def _write(base: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _proc(tmp: Path, pid: int, cgroup: str) -> Path:
    proc = tmp / "proc"
    _write(proc / str(pid), {"cgroup": cgroup})
    return proc


def test_v2_directory(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root, {"cgroup.controllers": "cpu memory pids io\n"})
    pod = root / "pycri" / CID
    _write(
        pod,
        {
            "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n"
            "nr_periods 10\nnr_throttled 2\nthrottled_usec 300\n",
            "cpu.max": "20000 100000\n",
            "cpu.weight": "100\n",
            "memory.current": "8192\n",
            "memory.peak": "16384\n",
            "memory.stat": "anon 4096\nfile 2048\nkernel 512\nfile_mapped 1024\n"
            "inactive_file 1024\npgfault 33\npgmajfault 2\n",
            "memory.swap.current": "0\n",
            "memory.events": "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
            "memory.max": "max\n",
            "memory.low": "0\n",
            "memory.swap.max": "67108864\n",
            "pids.current": "2\n",
            "pids.max": "max\n",
            "cgroup.procs": "10\n11\n",
            "cgroup.threads": "10\n11\n12\n",
            "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
            "cpu.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=700\n",
        },
    )
    proc = _proc(tmp_path, 10, f"0::/pycri/{CID}\n")
    cgroup = Cgroup.of_pid(10, str(root), str(proc))
    assert cgroup == Cgroup.at(pod)
    assert cgroup.procs() == [10, 11]
    u = cgroup.usage()
    assert (u.cpu_usage_ns, u.cpu_user_ns, u.cpu_system_ns) == (2_500_000, 2_000_000, 500_000)
    assert (u.cfs_periods, u.cfs_throttled_periods, u.cfs_throttled_ns) == (10, 2, 300_000)
    assert (u.memory_usage, u.memory_max_usage, u.memory_working_set) == (8192, 16384, 7168)
    assert (u.memory_rss, u.memory_cache, u.memory_kernel, u.memory_mapped_file) == (
        4096,
        2048,
        512,
        1024,
    )
    assert (u.memory_failcnt, u.oom_events, u.pgfault, u.pgmajfault) == (5, 1, 33, 2)
    assert (u.processes, u.threads, u.threads_max) == (2, 3, 0)
    assert u.io == [DeviceIO(8, 0, read_bytes=4096, write_bytes=8192, reads=1, writes=2)]
    assert (u.spec_cpu_quota, u.spec_cpu_period, u.spec_cpu_shares) == (
        20000,
        100000,
        2 + 99 * 262142 // 9999,
    )
    assert (u.spec_memory_limit, u.spec_memory_reservation, u.spec_memory_swap_limit) == (
        0,
        0,
        67108864,
    )
    assert u.pressure == {"cpu": (1_500_000, 700_000)}


def test_v1_controllers_and_hybrid_pressure(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    path = f"docker/{CID}"
    _write(
        root,
        {
            f"cpu/{path}/cpu.stat": "nr_periods 4\nnr_throttled 1\nthrottled_time 9000\n",
            f"cpu/{path}/cpu.cfs_quota_us": "-1\n",
            f"cpu/{path}/cpu.cfs_period_us": "100000\n",
            f"cpu/{path}/cpu.shares": "1024\n",
            f"cpuacct/{path}/cpuacct.usage": "410909153\n",
            f"cpuacct/{path}/cpuacct.usage_user": "395759628\n",
            f"cpuacct/{path}/cpuacct.usage_sys": "16000000\n",
            f"memory/{path}/memory.usage_in_bytes": "724992\n",
            f"memory/{path}/memory.max_usage_in_bytes": "4087808\n",
            f"memory/{path}/memory.failcnt": "0\n",
            f"memory/{path}/memory.kmem.usage_in_bytes": "270336\n",
            f"memory/{path}/memory.limit_in_bytes": "9223372036854771712\n",
            f"memory/{path}/memory.soft_limit_in_bytes": "9223372036854771712\n",
            f"memory/{path}/memory.memsw.limit_in_bytes": "134217728\n",
            f"memory/{path}/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            f"memory/{path}/memory.stat": "cache 1\nrss 2\ntotal_cache 49152\ntotal_rss 53248\n"
            "total_mapped_file 24576\ntotal_swap 0\ntotal_inactive_file 4096\n"
            "total_pgfault 1197\ntotal_pgmajfault 1\n",
            f"pids/{path}/pids.current": "1\n",
            f"pids/{path}/pids.max": "max\n",
            f"pids/{path}/cgroup.procs": "20\n",
            f"pids/{path}/tasks": "20\n",
            f"blkio/{path}/blkio.throttle.io_service_bytes_recursive": "8:0 Read 512\n"
            "8:0 Write 4096\n8:0 Sync 0\nTotal 4608\n",
            f"blkio/{path}/blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 3\n",
            f"unified/{path}/memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=2\n",
        },
    )
    lines = [
        f"{i}:{c}:/{path}" for i, c in enumerate(["cpu", "cpuacct", "memory", "pids", "blkio"])
    ]
    proc = _proc(tmp_path, 20, "\n".join([*lines, f"9:name=systemd:/{path}", f"0::/{path}"]))
    cgroup = Cgroup.of_pid(20, str(root), str(proc))
    assert cgroup is not None
    assert not cgroup.v2
    assert cgroup.unified == root / "unified" / path
    u = cgroup.usage()
    assert (u.cpu_usage_ns, u.cpu_user_ns, u.cpu_system_ns) == (410909153, 395759628, 16000000)
    assert (u.cfs_periods, u.cfs_throttled_periods, u.cfs_throttled_ns) == (4, 1, 9000)
    assert (u.memory_usage, u.memory_max_usage, u.memory_working_set) == (724992, 4087808, 720896)
    assert (u.memory_cache, u.memory_rss, u.memory_mapped_file, u.memory_kernel) == (
        49152,
        53248,
        24576,
        270336,
    )
    assert (u.memory_swap, u.memory_failcnt, u.oom_events) == (0, 0, 2)
    assert (u.pgfault, u.pgmajfault, u.processes, u.threads, u.threads_max) == (1197, 1, 1, 1, 0)
    assert u.io == [DeviceIO(8, 0, read_bytes=512, write_bytes=4096, reads=1, writes=3)]
    # no quota (-1), no memory limit (the kernel's "unlimited"): reported as cAdvisor does
    assert (u.spec_cpu_quota, u.spec_cpu_period, u.spec_cpu_shares) == (None, 100000, 1024)
    assert (u.spec_memory_limit, u.spec_memory_reservation, u.spec_memory_swap_limit) == (
        0,
        0,
        134217728,
    )
    assert u.pressure == {"memory": (5000, 2000)}


def test_v2_without_swap_accounting(tmp_path: Path) -> None:
    _write(tmp_path, {"memory.current": "10\n", "memory.stat": "anon 10\n"})
    assert Cgroup.at(tmp_path).usage().memory_swap == 0


def test_a_vanished_cgroup_leaves_figures_out(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root, {"cgroup.controllers": "cpu\n"})
    assert Cgroup.of_pid(99, str(root), str(tmp_path / "proc")) is None
    u = Cgroup.at(root / "gone").usage()
    assert (u.cpu_usage_ns, u.memory_usage, u.processes, u.threads, u.io) == (
        None,
        None,
        None,
        None,
        [],
    )


def test_net_dev_skips_loopback(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _write(
        proc / "7" / "net",
        {
            "dev": "Inter-|   Receive                            |  Transmit\n"
            " face |bytes packets errs drop fifo frame compressed multicast|bytes packets "
            "errs drop fifo colls carrier compressed\n"
            "    lo:     100       1    0    0    0     0          0         0      100       1"
            "    0    0    0     0       0          0\n"
            "  eth0:     736       9    1    2    0     0          0         0      252       4"
            "    3    5    0     0       0          0\n",
        },
    )
    assert net_dev(7, str(proc)) == [
        Interface(
            "eth0",
            rx_bytes=736,
            rx_packets=9,
            rx_errors=1,
            rx_dropped=2,
            tx_bytes=252,
            tx_packets=4,
            tx_errors=3,
            tx_dropped=5,
        )
    ]
    assert net_dev(8, str(proc)) == []


def test_process_counts_and_filesystem(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    fd = proc / "5" / "fd"
    fd.mkdir(parents=True)
    os.symlink("/dev/null", fd / "0")
    os.symlink("socket:[1234]", fd / "3")
    assert process_counts([5, 6], str(proc)) == (2, 1)
    fs = filesystem(str(tmp_path), usage_bytes=10)
    assert fs is not None
    assert fs.usage_bytes == 10
    assert fs.limit_bytes > 0
    assert fs.inodes_total >= fs.inodes_free
    assert filesystem(str(tmp_path / "missing"), 0) is None


def test_overlay_upper_bytes(tmp_path: Path) -> None:
    upper = tmp_path / "snapshots" / "7" / "fs"
    _write(upper, {"tmp/f": "x" * 10000})
    proc = tmp_path / "proc"
    _write(
        proc / "3",
        {
            "mountinfo": "100 90 0:50 / /proc rw - proc proc rw\n"
            f"90 80 0:49 / / rw,relatime - overlay overlay rw,lowerdir=/l:/m,upperdir={upper},"
            f"workdir={tmp_path}/work\n",
        },
    )
    size = overlay_upper_bytes(3, str(proc))
    assert size is not None
    assert size >= 10000
    _write(proc / "4", {"mountinfo": "90 80 8:1 / / rw - ext4 /dev/sda1 rw\n"})
    assert overlay_upper_bytes(4, str(proc)) is None
