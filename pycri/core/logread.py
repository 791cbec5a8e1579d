"""Read and follow a CRI log file, as the kubelet does for ``kubectl logs``.

The reading side of :mod:`pycri.core.logs`, which writes these files:
``pycrictl logs`` and ``pycri-kubelet logs`` both print through it.

Following keeps one open file and a byte offset: bytes are never read
twice, an unfinished line waits in a buffer for its end, and when the
file is rotated (a new inode at the same path) the old file is drained
before the new one is read from its start. Following ends once the
container stops running and the file has been read to its end.

:func:`resume_point` reads where a file ends (its last timestamp), for a
:mod:`pycri.core.logcopy` copier resuming after a restart.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pycri.core.logs import format_timestamp, parse_log_line

__all__ = ["LogFollower", "LogOptions", "resume_point", "tail_offset"]

_BLOCK = 64 * 1024
#: how much of a file's end resume_point reads for its last lines
_TAIL_BYTES = 64 * 1024
Writer = Callable[[str, bytes], None]


@dataclass
class LogOptions:
    """What to print: crictl's --tail, --since, -t, -f, --limit-bytes and --stream."""

    tail: int = -1
    since_ns: int = 0
    timestamps: bool = False
    follow: bool = False
    limit_bytes: int = -1
    stream: str = ""


def tail_offset(f: BinaryIO, lines: int) -> int:
    """The offset where the last ``lines`` lines of ``f`` start."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    pos, seen, skip_last = end, 0, True
    while pos > 0:
        size = min(_BLOCK, pos)
        pos -= size
        f.seek(pos)
        block = f.read(size)
        for index in range(len(block) - 1, -1, -1):
            if block[index] != 0x0A:
                skip_last = False
                continue
            if skip_last:  # the newline that ends the file is not a line start
                skip_last = False
                continue
            seen += 1
            if seen == lines:
                return pos + index + 1
    return 0


def resume_point(path: str | os.PathLike[str]) -> tuple[int | None, int]:
    """(timestamp of the last line written, how many lines at the end carry it).

    An empty or missing file right after a rotation says nothing, so the
    newest rotated sibling (``<name>.<suffix>``, uncompressed) is read instead.
    """
    last, count = _file_resume_point(path)
    if last is not None:
        return last, count
    current = Path(path)
    rotated = [
        p
        for p in current.parent.glob(f"{glob.escape(current.name)}.*")
        # not kubelet's compressed ones, nor the .gz.tmp it is writing
        if not p.name.endswith((".gz", ".tmp")) and p.is_file()
    ]
    if not rotated:
        return None, 0
    return _file_resume_point(max(rotated, key=lambda p: p.stat().st_mtime_ns))


def _file_resume_point(path: str | os.PathLike[str]) -> tuple[int | None, int]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        return None, 0
    lines = tail.split(b"\n")
    if size > _TAIL_BYTES:
        lines = lines[1:]  # the first one may be cut
    last: int | None = None
    count = 0
    for raw in reversed([ln for ln in lines if ln]):
        try:
            ts = parse_log_line(raw).timestamp_ns
        except ValueError:
            continue
        if last is None:
            last, count = ts, 1
        elif ts == last:
            count += 1
        else:
            break
    return last, count


class LogFollower:
    """Prints a CRI log file through ``write(stream, data)``."""

    def __init__(
        self,
        path: str,
        options: LogOptions,
        write: Writer,
        is_running: Callable[[], bool] = lambda: False,
        *,
        poll: float = 0.1,
        check_every: float = 1.0,
    ) -> None:
        self.path = path
        self.options = options
        self._write = write
        self._is_running = is_running
        self._poll = poll
        self._check_every = check_every
        self._pending = b""
        self._left = options.limit_bytes
        self._file: BinaryIO

    def run(self) -> None:
        """Print until done (the end of the file, or the container stopped with -f)."""
        self._file = open(self.path, "rb")  # noqa: SIM115 - replaced on rotation
        try:
            if self.options.tail >= 0:
                self._file.seek(tail_offset(self._file, self.options.tail))
            if not self._drain(self._file):
                return
            if self.options.follow:
                self._follow()
            elif self._pending:
                self._emit(self._pending)  # an unfinished last line, as the kubelet does
        finally:
            self._file.close()

    def _follow(self) -> None:
        last_check = time.monotonic() - self._check_every  # look at the container at once
        while True:
            time.sleep(self._poll)
            if not self._drain(self._file) or not self._switch_if_rotated():
                return
            if time.monotonic() - last_check >= self._check_every:
                last_check = time.monotonic()
                if not self._is_running():
                    self._drain(self._file)
                    return

    def _switch_if_rotated(self) -> bool:
        """Move to a new file at the same path; False once the limit is hit."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return True  # rotated away; the runtime has not reopened yet
        opened = os.fstat(self._file.fileno())
        if (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev):
            if not self._drain(self._file):  # what was written before the rename
                return False
            self._file.close()
            self._pending = b""
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by run()
            return self._drain(self._file)
        if current.st_size < self._file.tell():  # truncated in place (copytruncate)
            self._file.seek(0)
            self._pending = b""
        return True

    def _drain(self, f: BinaryIO) -> bool:
        """Print every complete line up to the end of ``f``; False once the limit is hit."""
        while True:
            chunk = f.read(_BLOCK)
            if not chunk:
                return True
            data = self._pending + chunk
            *lines, self._pending = data.split(b"\n")
            for line in lines:
                if not self._emit(line):
                    return False

    def _emit(self, line: bytes) -> bool:
        try:
            entry = parse_log_line(line)
        except ValueError:
            return True  # the kubelet skips lines it cannot parse, too
        opts = self.options
        if opts.since_ns and entry.timestamp_ns < opts.since_ns:
            return True
        if opts.stream and entry.stream != opts.stream:
            return True
        out = entry.message if entry.partial else entry.message + b"\n"
        if opts.timestamps:
            out = format_timestamp(entry.timestamp_ns).encode() + b" " + out
        if self._left >= 0:
            out = out[: self._left]
            self._left -= len(out)
        if out:
            self._write(entry.stream, out)
        return self._left != 0
