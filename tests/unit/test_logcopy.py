from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pycri.core.logcopy import LogCopiers, LogRecord
from pycri.core.logread import resume_point
from pycri.core.logs import parse_log_line

ENGINE_LOG = [
    LogRecord("stdout", 1_000, b"one"),
    LogRecord("stderr", 2_000, b"two"),
    LogRecord("stdout", 2_000, b"two again, same ns"),
    LogRecord("stdout", 3_000, b"thr", partial=True),
    LogRecord("stdout", 3_000, b"ee"),
]


def engine(upto: int) -> object:
    """An engine log of which the first ``upto`` records exist so far."""

    def follow(since: int | None, stop: threading.Event) -> Iterator[LogRecord]:
        for record in ENGINE_LOG[:upto]:
            if since is None or record.timestamp_ns >= since:  # engines include `since`
                yield record

    return follow


def lines(path: Path) -> list[tuple[int, str, bool, bytes]]:
    parsed = [parse_log_line(raw) for raw in path.read_bytes().splitlines()]
    return [(p.timestamp_ns, p.stream, p.partial, p.message) for p in parsed]


def copy(path: Path, upto: int) -> None:
    copiers = LogCopiers()
    copiers.ensure("c1", str(path), engine(upto))  # type: ignore[arg-type]
    copiers.wait("c1", 5)
    copiers.stop_all()


def test_copy_then_resume_without_loss_or_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    copy(path, 2)  # the server is killed after two lines...
    assert resume_point(path) == (2_000, 1)
    copy(path, 5)  # ...and a new one resumes when the engine has five
    assert lines(path) == [
        (1_000, "stdout", False, b"one"),
        (2_000, "stderr", False, b"two"),
        (2_000, "stdout", False, b"two again, same ns"),
        (3_000, "stdout", True, b"thr"),
        (3_000, "stdout", False, b"ee"),
    ]
    copy(path, 5)  # a third start writes nothing new
    assert len(lines(path)) == 5


def test_resume_point_of_missing_file(tmp_path: Path) -> None:
    assert resume_point(tmp_path / "absent.log") == (None, 0)


def test_reopen_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    release = threading.Event()

    def slow(since: int | None, stop: threading.Event) -> Iterator[LogRecord]:
        yield LogRecord("stdout", 1, b"before")
        release.wait(5)
        yield LogRecord("stdout", 2, b"after")

    copiers = LogCopiers()
    copiers.ensure("c1", str(path), slow)
    while not path.exists() or not path.read_bytes():
        time.sleep(0.01)
    path.rename(tmp_path / "c.log.1")
    assert copiers.reopen("c1")
    release.set()
    copiers.wait("c1", 5)
    copiers.stop_all()
    assert [m for *_, m in lines(tmp_path / "c.log.1")] == [b"before"]
    assert [m for *_, m in lines(path)] == [b"after"]
    assert not copiers.reopen("c1")


def test_resume_after_rotation_reads_the_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    copy(path, 2)
    path.rename(tmp_path / "c.log.20261127-120000")
    path.touch()  # rotation left an empty current file, then the server restarted
    assert resume_point(path) == (2_000, 1)
    copy(path, 5)
    assert [m for *_, m in lines(path)] == [b"two again, same ns", b"thr", b"ee"]


def test_resume_ignores_what_kubelet_is_still_compressing(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    copy(path, 2)
    path.rename(tmp_path / "c.log.20261127-120000")
    path.touch()
    # kubelet gzips a rotated file through "<name>.gz.tmp": binary, half-written, newer
    (tmp_path / "c.log.20261127-110000.gz.tmp").write_bytes(b"\x1f\x8b\x08 partial")
    assert resume_point(path) == (2_000, 1)
