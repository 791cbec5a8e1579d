"""pycri/core/wakeups.py and the nerdctl log follower it wakes, on real inotify and pidfds.

The processes and files are real (a child process, files in tmp_path); no
daemon is involved. What each test checks beyond the event: that nothing
is left open (the descriptors of the process) once watches are closed.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycri.core import wakeups as wakeups_module
from pycri.core.wakeups import Wakeups
from pycri_shims.nerdctl import logsource
from pycri_shims.nerdctl.logsource import json_log_source

QUICK = 2.0  # a wake comes within milliseconds; this only bounds a failing test


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def wakeups() -> Iterator[Wakeups]:
    before = _open_fds()
    watcher = Wakeups()
    yield watcher
    watcher.close()
    assert _open_fds() <= before, "a descriptor of the watcher was left open"


def _inotify_watches(watcher: Wakeups) -> int:
    """How many watches the kernel holds on the watcher's inotify descriptor."""
    assert watcher._inotify is not None
    info = Path(f"/proc/self/fdinfo/{watcher._inotify.fd}").read_text()
    return sum(line.startswith("inotify wd:") for line in info.splitlines())


def test_a_write_in_the_directory_wakes(wakeups: Wakeups, tmp_path: Path) -> None:
    log = tmp_path / "c1-json.log"
    log.write_bytes(b"")
    event = threading.Event()
    watch = wakeups.watch(event, str(tmp_path))
    assert (watch.directory, watch.exit) == (True, False)
    assert not event.wait(0.1)  # quiet: nothing wakes it
    with log.open("ab") as handle:
        handle.write(b"line\n")
    assert event.wait(QUICK)
    event.clear()
    (tmp_path / "c1-json.log.1").write_bytes(b"")  # a new file (a rotation) wakes too
    assert event.wait(QUICK)
    watch.close()
    watch.close()  # idempotent
    assert _inotify_watches(wakeups) == 0
    event.clear()
    log.write_bytes(b"more\n")
    assert not event.wait(0.2)


def test_two_waiters_on_one_directory_keep_the_watch_until_both_close(
    wakeups: Wakeups, tmp_path: Path
) -> None:
    first, second = threading.Event(), threading.Event()
    watches = [wakeups.watch(first, str(tmp_path)), wakeups.watch(second, str(tmp_path))]
    (tmp_path / "f").write_bytes(b"x")
    assert first.wait(QUICK)
    assert second.wait(QUICK)
    watches[0].close()
    assert _inotify_watches(wakeups) == 1
    second.clear()
    (tmp_path / "f").write_bytes(b"y")
    assert second.wait(QUICK)
    watches[1].close()
    assert _inotify_watches(wakeups) == 0


def test_a_process_exit_wakes(wakeups: Wakeups, tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        event = threading.Event()
        watch = wakeups.watch(event, str(tmp_path), child.pid, lambda: child.poll() is None)
        assert watch.exit
        assert not event.wait(0.1)
        child.kill()
        assert event.wait(QUICK)
        watch.close()
    finally:
        child.kill()
        child.wait()


def test_a_process_already_gone_wakes_at_once(wakeups: Wakeups, tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid names no process
    event = threading.Event()
    watch = wakeups.watch(event, str(tmp_path), child.pid)
    assert watch.exit
    assert event.is_set()
    watch.close()


def test_a_reused_pid_wakes_at_once(wakeups: Wakeups, tmp_path: Path) -> None:
    """The pid names a process, but not the container's init any more."""
    event = threading.Event()
    watch = wakeups.watch(event, str(tmp_path), os.getpid(), lambda: False)
    assert event.is_set()
    watch.close()


def test_a_removed_directory_wakes_and_drops_the_watch(wakeups: Wakeups, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    event = threading.Event()
    watch = wakeups.watch(event, str(state))
    state.rmdir()  # the container was removed behind the shim's back
    assert event.wait(QUICK)
    deadline = time.monotonic() + QUICK
    while watch.directory and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not watch.directory  # its follower falls back to polling
    watch.close()


def test_a_missing_directory_is_not_watched(wakeups: Wakeups, tmp_path: Path) -> None:
    watch = wakeups.watch(threading.Event(), str(tmp_path / "none"))
    assert not watch.directory
    watch.close()


def test_closing_the_watcher_closes_every_descriptor(tmp_path: Path) -> None:
    before = _open_fds()
    watcher = Wakeups()
    child = subprocess.Popen(["sleep", "30"])
    try:
        for index in range(3):
            (tmp_path / str(index)).mkdir()
            watcher.watch(threading.Event(), str(tmp_path / str(index)), child.pid)
        watcher.close()
        watcher.close()
        assert _open_fds() == before
        assert not watcher.watch(threading.Event(), str(tmp_path)).directory  # closed: no-op
    finally:
        child.kill()
        child.wait()


def test_without_inotify_nothing_is_watched(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An old kernel or a seccomp profile without inotify: followers poll."""
    monkeypatch.setattr(wakeups_module._Inotify, "open", classmethod(lambda cls: None))
    watcher = Wakeups()
    try:
        assert not watcher.watch(threading.Event(), str(tmp_path)).directory
    finally:
        watcher.close()


# -- the nerdctl follower, woken -------------------------------------------------------


def _record(text: str) -> bytes:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000001Z"
    return json.dumps({"log": text + "\n", "stream": "stdout", "time": stamp}).encode() + b"\n"


def test_a_watched_follower_sleeps_until_a_line_and_ends_at_the_exit(
    wakeups: Wakeups, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logsource, "_QUIET", 0.1)
    log = tmp_path / "c1-json.log"
    log.write_bytes(_record("first"))
    child = subprocess.Popen(["sleep", "30"])
    turns = 0  # the follower's turns: each quiet one reads the clock once
    clock = time.monotonic

    def counted() -> float:
        nonlocal turns
        turns += threading.current_thread().name == "follower"
        return clock()

    monkeypatch.setattr(time, "monotonic", counted)

    def alive() -> bool:
        return child.poll() is None

    wake, done = threading.Event(), threading.Event()
    source = json_log_source(
        str(log), alive, done,
        watch=lambda: wakeups.watch(wake, str(tmp_path), child.pid, alive),
    )  # fmt: skip
    lines: list[bytes] = []
    follower = threading.Thread(
        target=lambda: lines.extend(r.line for r in source(None, threading.Event())),
        name="follower",
    )
    follower.start()
    try:
        deadline = time.monotonic() + QUICK
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lines == [b"first"]
        deadline = time.monotonic() + QUICK
        while turns < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # its first quiet turn: it reads the clock, then sleeps
        before = turns
        time.sleep(0.5)  # a polling follower takes 3 more turns in this time
        assert turns == before
        with log.open("ab") as handle:
            handle.write(_record("second"))
        deadline = time.monotonic() + QUICK
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert lines == [b"first", b"second"]
        child.kill()  # reaped by alive()'s poll: a wait() here would make that say None
        follower.join(QUICK)
        assert not follower.is_alive()  # the exit woke it; the file stayed quiet
    finally:
        child.kill()
        child.wait()
        done.set()
        wake.set()
        follower.join(QUICK)
    assert _inotify_watches(wakeups) == 0  # the follower closed its watch
