"""Container log files in the CRI format the kubelet and crictl read.

Each line is ``<RFC3339Nano timestamp> <stdout|stderr> <P|F> <message>``:
``F`` ends a line, ``P`` is a piece of a longer one (the kubelet joins
the pieces). Lines longer than ``max_line`` bytes are cut into pieces so
that one runaway line cannot take the reader's memory. :mod:`pycri.core.logread`
reads and follows these files.
"""

from __future__ import annotations

import calendar
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

__all__ = [
    "CRILogLine",
    "CRILogWriter",
    "Stream",
    "format_timestamp",
    "parse_log_line",
    "parse_timestamp",
]

Stream = Literal["stdout", "stderr"]
DEFAULT_MAX_LINE = 16 * 1024


def format_timestamp(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def parse_timestamp(text: str) -> int:
    """RFC 3339 (any fraction length, Z or offset) to ns since the epoch."""
    date_time, zone = text, 0
    if text.endswith(("Z", "z")):
        date_time = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        sign = 1 if text[-6] == "+" else -1
        zone = sign * (int(text[-5:-3]) * 3600 + int(text[-2:]) * 60)
        date_time = text[:-6]
    whole, _, frac = date_time.partition(".")
    parsed = time.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    seconds = calendar.timegm(parsed) - zone
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return seconds * 1_000_000_000 + nanos


@dataclass(frozen=True)
class CRILogLine:
    timestamp_ns: int
    stream: Stream
    partial: bool
    message: bytes


def parse_log_line(line: bytes) -> CRILogLine:
    """Parse one line of a CRI log file (without its newline)."""
    try:
        ts, stream, tag, *rest = line.split(b" ", 3)
    except ValueError:
        raise ValueError(f"not a CRI log line: {line[:80]!r}") from None
    if stream not in (b"stdout", b"stderr") or tag not in (b"P", b"F"):
        raise ValueError(f"not a CRI log line: {line[:80]!r}")
    return CRILogLine(
        timestamp_ns=parse_timestamp(ts.decode()),
        stream="stdout" if stream == b"stdout" else "stderr",
        partial=tag == b"P",
        message=rest[0] if rest else b"",
    )


class CRILogWriter:
    """Appends a container's output to its CRI log file; thread safe.

    ``write`` takes raw output as it comes and keeps an unfinished line per
    stream until its newline arrives (or ``flush`` writes it as ``P``).
    ``write_line`` takes a line whose end is already known (engines that
    store output line by line).
    """

    def __init__(self, path: str | os.PathLike[str], max_line: int = DEFAULT_MAX_LINE) -> None:
        self.path = Path(path)
        self.max_line = max_line
        self._lock = threading.Lock()
        self._pending: dict[Stream, bytes] = {"stdout": b"", "stderr": b""}
        self._file: BinaryIO | None = None
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._file = os.fdopen(fd, "ab", buffering=0)

    def write(self, stream: Stream, data: bytes, timestamp_ns: int | None = None) -> None:
        with self._lock:
            buffered = self._pending[stream] + data
            *lines, rest = buffered.split(b"\n")
            for line in lines:
                self._emit(stream, line, False, timestamp_ns)
            while len(rest) > self.max_line:
                self._emit(stream, rest[: self.max_line], True, timestamp_ns)
                rest = rest[self.max_line :]
            self._pending[stream] = rest

    def write_line(
        self, stream: Stream, line: bytes, *, partial: bool = False, timestamp_ns: int | None = None
    ) -> None:
        with self._lock:
            self._emit(stream, line, partial, timestamp_ns)

    def flush(self) -> None:
        """Write any unfinished line as a partial one."""
        with self._lock:
            for stream, rest in self._pending.items():
                if rest:
                    self._emit(stream, rest, True, None)
                    self._pending[stream] = b""

    def reopen(self) -> None:
        """Start a new file at ``path`` (after log rotation moved the old one)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._open()

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _emit(self, stream: Stream, line: bytes, partial: bool, timestamp_ns: int | None) -> None:
        if self._file is None:
            return
        ts = format_timestamp(timestamp_ns if timestamp_ns is not None else time.time_ns())
        pieces = [line[i : i + self.max_line] for i in range(0, len(line), self.max_line)] or [b""]
        out = bytearray()
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            tag = b"P" if partial or not last else b"F"
            out += f"{ts} {stream} ".encode() + tag + b" " + piece + b"\n"
        self._file.write(bytes(out))
