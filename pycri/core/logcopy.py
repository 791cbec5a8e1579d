"""Copy an engine's container log into the CRI log file, resumably.

The engine's own log (Docker's json-file, nerdctl's) stays the source of
truth. A copier follows it with timestamps and appends CRI lines; after a
server restart it reads the last timestamp in the CRI file
(:func:`pycri.core.logread.resume_point`) and asks the engine for lines
since then, skipping the ones it already wrote, so no line is lost or
written twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pycri.core.logread import resume_point
from pycri.core.logs import CRILogWriter, Stream

__all__ = ["LogCopier", "LogCopiers", "LogRecord", "LogSource"]

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
