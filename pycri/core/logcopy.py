"""Copy an engine's container log into the CRI log file, resumably.

The engine's own log (Docker's json-file, nerdctl's) stays the source of
truth. A copier follows it with timestamps and appends CRI lines; after a
server restart it reads the last timestamp in the CRI file and asks the
engine for lines since then, skipping the ones it already wrote, so no line
is lost or written twice.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pycri.core.logs import CRILogWriter, Stream, parse_log_line

__all__ = ["LogCopier", "LogCopiers", "LogRecord", "LogSource", "resume_point"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogRecord:
    stream: Stream
    timestamp_ns: int
    line: bytes  # without its newline
    partial: bool = False


#: follows the engine log from ``since_ns`` (None: the beginning) until the
#: container exits or ``stop`` is set; must return soon after ``stop`` is set.
LogSource = Callable[[int | None, threading.Event], Iterator[LogRecord]]

_TAIL_BYTES = 64 * 1024


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


class LogCopier:
    """One container's copier thread."""

    def __init__(self, container_id: str, path: str, source: LogSource) -> None:
        self.container_id = container_id
        self.path = path
        self._source = source
        self._stop = threading.Event()
        self._writer: CRILogWriter | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"pycri-logs-{container_id[:12]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        since, already = resume_point(self.path)
        try:
            writer = CRILogWriter(self.path)
        except OSError as err:
            log.warning("cannot write the log of %s at %s: %s", self.container_id, self.path, err)
            return
        self._writer = writer
        try:
            for record in self._source(since, self._stop):
                if since is not None:
                    if record.timestamp_ns < since:
                        continue
                    if record.timestamp_ns == since and already > 0:
                        already -= 1
                        continue
                writer.write_line(
                    record.stream,
                    record.line,
                    partial=record.partial,
                    timestamp_ns=record.timestamp_ns,
                )
                if self._stop.is_set():
                    break
        except Exception:
            log.exception("copying the log of %s stopped", self.container_id)
        finally:
            writer.close()

    def reopen(self) -> None:
        if self._writer is not None:
            self._writer.reopen()
        else:
            Path(self.path).touch()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)


class LogCopiers:
    """The copiers of one shim, by container id; thread safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copiers: dict[str, LogCopier] = {}

    def ensure(self, container_id: str, path: str, source: LogSource) -> None:
        """Start copying unless a live copier for this container exists."""
        if not path:
            return
        with self._lock:  # started under the lock: two callers never start two copiers
            current = self._copiers.get(container_id)
            if current is not None and current.alive:
                return
            copier = LogCopier(container_id, path, source)
            self._copiers[container_id] = copier
            copier.start()

    def reopen(self, container_id: str) -> bool:
        """Reopen the file of a live copier; False when there is none."""
        with self._lock:
            copier = self._copiers.get(container_id)
        if copier is None or not copier.alive:
            return False
        copier.reopen()
        return True

    def wait(self, container_id: str, timeout: float) -> None:
        """Let a copier whose container has exited write its last lines."""
        with self._lock:
            copier = self._copiers.get(container_id)
        if copier is not None:
            copier.join(timeout)

    def finish(self, container_id: str, timeout: float) -> None:
        """Let the copier drain what the engine still has, then forget it."""
        self.wait(container_id, timeout)
        self.stop(container_id)

    def stop(self, container_id: str) -> None:
        with self._lock:
            copier = self._copiers.pop(container_id, None)
        if copier is not None:
            copier.stop()

    def stop_all(self) -> None:
        with self._lock:
            copiers = list(self._copiers.values())
            self._copiers.clear()
        for copier in copiers:
            copier.stop()
