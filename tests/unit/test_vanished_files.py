"""A container or process ending while its files are read is "gone", not an error.

The kernel lets a cgroup be removed while one of its files is open; the
read then fails with ENODEV (seen once: ListPodSandboxStats answered
INTERNAL). A /proc file of a process that exits after the open answers
ESRCH. Both are produced here for real: the file is opened, then the
cgroup is removed or the process reaped, then read. Where that needs root
and a writable cgroup hierarchy the test says so and skips; the injected
fault below covers the same path everywhere.
"""

from __future__ import annotations

import errno
import os
import pathlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycri.core.linux import read_if_present
from pycri.testing import require_real
from pycri_shims.nerdctl import host, stats
from pycri_shims.nerdctl.host import Cgroups, RuncState

CGROUP_ROOT = Path("/sys/fs/cgroup")


def end_after_open(
    monkeypatch: pytest.MonkeyPatch, under: Path, end: Callable[[], None]
) -> list[Path]:
    """Make opening a file below ``under`` run ``end`` between the open and the read."""
    real_open = pathlib.Path.open
    opened: list[Path] = []

    def open_then_end(self: Path, *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, *args, **kwargs)
        if self.is_relative_to(under) and not opened:
            opened.append(self)
            end()
        return handle

    monkeypatch.setattr(pathlib.Path, "open", open_then_end)
    return opened


@pytest.fixture
def cgroup() -> Iterator[tuple[Cgroups, str, list[Path]]]:
    """A real, empty container cgroup (``<namespace>/<id>``) in every controller the shim reads."""
    cgroups = Cgroups(str(CGROUP_ROOT), f"pycri-unit-{uuid.uuid4().hex[:8]}")
    container_id = "c" * 64
    controllers = [""] if cgroups.v2 else ["pids", "memory", "cpuacct"]
    made: list[Path] = []
    try:
        for controller in controllers:
            directory = cgroups._dir(controller, container_id)
            directory.mkdir(parents=True)
            made += [directory, directory.parent]
    except OSError as err:
        for directory in made:
            directory.rmdir()
        require_real(
            False, f"cannot create a cgroup here ({err}): needs root and a cgroup hierarchy"
        )
    yield cgroups, container_id, made
    for directory in made:
        if directory.exists():
            directory.rmdir()


def remove_all(directories: list[Path]) -> Callable[[], None]:
    def remove() -> None:
        for directory in directories:
            if directory.exists():
                directory.rmdir()

    return remove


def test_the_kernel_answers_enodev_for_a_removed_cgroup(
    cgroup: tuple[Cgroups, str, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The premise, checked: a cgroup file read after its cgroup went fails with ENODEV."""
    cgroups, container_id, made = cgroup
    path = cgroups._dir("pids", container_id) / "cgroup.procs"
    end_after_open(monkeypatch, path.parent, remove_all(made))
    with pytest.raises(OSError, match="No such device") as caught:
        path.read_text()
    assert caught.value.errno == errno.ENODEV
    assert read_if_present(path) is None  # and once gone, a plain ENOENT


@pytest.mark.parametrize("what", ["procs", "oom_killed", "usage"])
def test_a_cgroup_removed_while_read_is_gone(
    cgroup: tuple[Cgroups, str, list[Path]], monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    cgroups, container_id, made = cgroup
    opened = end_after_open(monkeypatch, CGROUP_ROOT, remove_all(made))
    if what == "procs":
        assert cgroups.procs(container_id) == []
    elif what == "oom_killed":
        assert cgroups.oom_killed(container_id) is False
    else:
        usage = cgroups.usage(container_id)
        assert (usage.cpu_ns, usage.memory_usage, usage.working_set) == (None, None, None)
    assert opened, "the read never reached the cgroup"


def test_stats_of_a_container_whose_cgroup_goes_while_read(
    cgroup: tuple[Cgroups, str, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ListPodSandboxStats's path: the container is reported without numbers, not a crash."""
    cgroups, container_id, made = cgroup
    end_after_open(monkeypatch, CGROUP_ROOT, remove_all(made))
    row = {"ID": container_id, "Labels": {}}
    result = stats.pod_stats(cgroups, None, {"ID": "p" * 64, "Labels": {}}, [row])
    assert [c.attributes.id for c in result.linux.containers] == [container_id]
    assert not result.linux.containers[0].memory.HasField("working_set_bytes")


@pytest.fixture
def exiting() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_a_process_exiting_while_its_proc_files_are_read_is_gone(
    exiting: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = exiting.pid
    ticks = host._start_ticks(pid)
    assert ticks is not None
    assert host.running(pid)
    state = RuncState(started_ns=0, init_pid=pid, init_start_ticks=ticks)

    def reap() -> None:
        exiting.kill()
        exiting.wait()

    opened = end_after_open(monkeypatch, Path(f"/proc/{pid}"), reap)
    assert state.alive() is False  # the read itself met ESRCH
    assert opened == [Path(f"/proc/{pid}/stat")]
    assert host.running(pid) is False
    assert host.descendants(pid, [pid]) == set()


def test_an_injected_enodev_is_gone_and_other_errors_still_raise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Fault injection for hosts where no cgroup can be made (no root)."""
    code = errno.ENODEV

    def failing(self: Path, *args: Any, **kwargs: Any) -> str:
        raise OSError(code, os.strerror(code), str(self))

    monkeypatch.setattr(pathlib.Path, "read_text", failing)
    cgroups = Cgroups(str(tmp_path), "pycri")
    assert cgroups.procs("c" * 64) == []
    assert cgroups.usage("c" * 64).memory_usage is None
    assert host.running(os.getpid()) is False
    code = errno.EIO  # a broken file system is not a container ending
    with pytest.raises(OSError, match="Input/output error"):
        cgroups.procs("c" * 64)
