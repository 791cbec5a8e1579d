"""Reading and following CRI log files (pycri.core.logread: pycrictl logs, pycri-kubelet logs)."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pycri.core.logread import LogFollower, LogOptions, tail_offset
from pycri.core.logs import format_timestamp

T0 = 1_700_000_000_000_000_000


def line(n: int, text: str, stream: str = "stdout", tag: str = "F") -> str:
    return f"{format_timestamp(T0 + n * 1_000_000_000)} {stream} {tag} {text}\n"


class Sink:
    """Collects what the follower writes, per stream."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, stream: str, data: bytes) -> None:
        with self.lock:
            self.chunks.append((stream, data))

    def text(self, stream: str | None = None) -> str:
        with self.lock:
            return b"".join(d for s, d in self.chunks if stream in (None, s)).decode()


def read(path: Path, **options: object) -> Sink:
    sink = Sink()
    LogFollower(str(path), LogOptions(**options), sink).run()  # type: ignore[arg-type]
    return sink


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "ctr.log"
    path.write_text(
        line(0, "one")
        + line(1, "two", "stderr")
        + line(2, "thr", tag="P")
        + line(2, "ee")
        + "garbage that is not a CRI line\n"
        + line(3, "four")
    )
    return path


def test_reads_streams_and_joins_partial_lines(log: Path) -> None:
    sink = read(log)
    assert sink.text() == "one\ntwo\nthree\nfour\n"
    assert sink.text("stderr") == "two\n"


def test_tail_since_timestamps_stream_limit(log: Path) -> None:
    assert read(log, tail=1).text() == "four\n"
    assert read(log, tail=0).text() == ""
    assert read(log, tail=100).text() == "one\ntwo\nthree\nfour\n"
    assert read(log, since_ns=T0 + 2_000_000_000).text() == "three\nfour\n"
    assert read(log, stream="stderr").text() == "two\n"
    assert read(log, limit_bytes=6).text() == "one\ntw"
    stamped = read(log, timestamps=True, tail=1).text()
    assert stamped == f"{format_timestamp(T0 + 3_000_000_000)} four\n"


def test_tail_offset_counts_from_the_end() -> None:
    data = b"a\nbb\nccc\n"
    assert tail_offset(io.BytesIO(data), 1) == 5
    assert tail_offset(io.BytesIO(data), 2) == 2
    assert tail_offset(io.BytesIO(data), 3) == 0
    assert tail_offset(io.BytesIO(b"a\nno-newline"), 1) == 2


def test_unfinished_last_line_is_printed_without_follow(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text(line(0, "done") + line(1, "half").rstrip("\n"))
    assert read(path).text() == "done\nhalf\n"


def follow_in_thread(
    path: Path, running: threading.Event, **options: object
) -> tuple[Sink, threading.Thread]:
    sink = Sink()
    follower = LogFollower(
        str(path),
        LogOptions(follow=True, **options),  # type: ignore[arg-type]
        sink,
        running.is_set,
        poll=0.005,
        check_every=0.02,
    )
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    return sink, thread


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_follow_growth_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    path.write_text(line(0, "a"))
    running = threading.Event()
    running.set()
    sink, thread = follow_in_thread(path, running)
    wait_for(lambda: sink.text() == "a\n")

    with path.open("a") as f:  # a line written in two pieces must not be split
        f.write(line(1, "b")[:10])
        f.flush()
        time.sleep(0.03)
        f.write(line(1, "b")[10:])
    wait_for(lambda: sink.text() == "a\nb\n")

    # rotation: the runtime renames the file, writes a last line to it, then reopens
    with path.open("a") as old:
        os.rename(path, tmp_path / "ctr.log.1")
        old.write(line(2, "c"))
    time.sleep(0.03)
    path.write_text(line(3, "d"))
    wait_for(lambda: sink.text() == "a\nb\nc\nd\n")

    with path.open("r+") as f:  # copytruncate: emptied in place, same inode
        f.truncate(0)
    time.sleep(0.03)
    with path.open("a") as f:
        f.write(line(4, "e"))
    wait_for(lambda: sink.text().endswith("e\n"))

    with path.open("a") as f:
        f.write(line(5, "last"))
    running.clear()  # the container stops: the follower drains and returns
    thread.join(timeout=3)
    assert not thread.is_alive()
    assert sink.text() == "a\nb\nc\nd\ne\nlast\n"


def test_follow_stops_at_limit(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    path.write_text("")
    running = threading.Event()
    running.set()
    sink, thread = follow_in_thread(path, running, limit_bytes=4)
    path.write_text(line(0, "abcdef"))
    thread.join(timeout=3)
    assert not thread.is_alive()
    assert sink.text() == "abcd"
