"""CRI log files written by pycri from Docker's own (json-file) log.

One copier per container follows ``GET /containers/{id}/logs`` with
timestamps (pycri.core.logcopy resumes from the CRI file's last line after
a restart). Docker keeps stdout and stderr apart only in its multiplexed
frames, so the stream is read frame by frame here rather than through
docker-py, which merges them. A frame is one log entry: ``<RFC3339Nano>
<text>``, and an entry without a trailing newline is a piece of a line
longer than 16 KiB (or the unterminated end of the output).

Each copier holds an flock on ``/run/pycri-docker/<id>.lock`` while it
writes, so however many pycri processes share the daemon, one writes.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from pycri.core.logcopy import LogCopiers, LogRecord, LogSource
from pycri.core.logs import Stream, parse_timestamp
from pycri.errors import FailedPreconditionError, NotFoundError
from pycri_shims.docker.connection import DockerConnection
from pycri_shims.docker.errors import translate
from pycri_shims.docker.streams import STDERR, frames, open_stream, shutdown

__all__ = ["DockerLogs"]

log = logging.getLogger(__name__)

#: seconds before asking again whether another process still copies a log
ELSEWHERE_RETRY = 10.0


@dataclass
class _Follow:
    """An open log stream, so that stop() can cut a blocked read short."""

    response: requests.Response
    #: whether drain_exited may cut it: a follow of a multiplexed log (a terminal's is
    #: read by lines, which a cut could leave half read; a catch-up read must finish)
    cuttable: bool = False
    stopping: bool = False
    #: cut because the container exited: the copier reads the rest without follow
    exited: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _record(stream: Stream, entry: bytes) -> LogRecord | None:
    stamp, sep, text = entry.partition(b" ")
    if not sep:
        return None
    try:
        ts = parse_timestamp(stamp.decode())
    except ValueError:
        return None
    partial = not text.endswith(b"\n")
    return LogRecord(stream, ts, text if partial else text[:-1], partial)


def _tty_records(response: requests.Response) -> Iterator[LogRecord]:
    # A terminal's log is not multiplexed: everything is stdout, one entry per line.
    for line in response.iter_lines(chunk_size=64 * 1024, delimiter=b"\n"):
        record = _record("stdout", line.removesuffix(b"\r") + b"\n")
        if record is not None:
            yield record


def _multiplexed_records(response: requests.Response) -> Iterator[LogRecord]:
    for stream, payload in frames(response):
        record = _record("stderr" if stream == STDERR else "stdout", payload)
        if record is not None:
            yield record


@functools.cache
def _lock_dir() -> str:
    for candidate in ("/run/pycri-docker", os.path.join(tempfile.gettempdir(), "pycri-docker")):
        try:
            os.makedirs(candidate, mode=0o700, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise OSError("no writable directory for log copier locks")


@contextmanager
def _sole_copier(container_id: str) -> Iterator[bool]:
    """Whether this copier may write the container's CRI log: one writer per host.

    Two pycri servers on one daemon (tests, benchmarks, a restart racing the
    old process's exit) would each copy every line. The flock dies with its
    process, so a server restarted after kill -9 takes over at once.
    """
    try:
        fd = os.open(os.path.join(_lock_dir(), f"{container_id}.lock"), os.O_RDWR | os.O_CREAT)
    except OSError:
        yield True  # no lock to be had: copy rather than lose the log
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def prune_locks(existing: set[str]) -> None:
    """Remove the lock files of containers that no longer exist (removed behind our back)."""
    try:
        directory = _lock_dir()
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.endswith(".lock") and name.removesuffix(".lock") not in existing:
            forget_lock(name.removesuffix(".lock"))


def forget_lock(container_id: str) -> None:
    """Remove a removed container's lock file."""
    try:
        os.unlink(os.path.join(_lock_dir(), f"{container_id}.lock"))
    except OSError:
        pass


class DockerLogs:
    """The log copiers of one Docker shim."""

    def __init__(self, connection: DockerConnection) -> None:
        self._conn = connection
        self._copiers = LogCopiers()
        self._lock = threading.Lock()
        self._follows: dict[str, _Follow] = {}
        self._closed = False
        #: containers whose log another process copies -> when to look again
        self._elsewhere: dict[str, float] = {}

    def follow(self, container_id: str, path: str, tty: bool, *, from_now: bool = False) -> None:
        """Copy the container's log to ``path`` unless a copier already does."""
        if self._closed:
            return  # two copiers of one file would duplicate every line
        if self._elsewhere.get(container_id, 0.0) > time.monotonic():
            return
        floor = time.time_ns() if from_now else None
        self._copiers.ensure(container_id, path, self._source(container_id, path, tty, floor))

    def reopen(self, container_id: str) -> bool:
        return self._copiers.reopen(container_id)

    def drain_exited(self, container_id: str, timeout: float) -> None:
        """The container has exited: let its copier write the last lines.

        Docker closes a container's log before it reports the container
        stopped, so the file is complete now; but dockerd ends a follow some
        milliseconds later. The follow is cut at once instead, and the copier
        reads what is left without follow (as after dockerd's early ends).
        """
        with self._lock:
            current = self._follows.get(container_id)
        if current is not None and current.cuttable:
            with current.lock:
                current.exited = True
            # the copier sees the end (a frame cut short is dropped, and read again)
            shutdown(current.response, close=False)
        self._copiers.wait(container_id, timeout)

    def stop(self, container_id: str) -> None:
        with self._lock:
            current = self._follows.get(container_id)
        if current is not None:
            self._cut(current)
        self._copiers.stop(container_id)

    def forget(self, container_id: str) -> None:
        """The container is gone: drop what was kept about its copier."""
        self._elsewhere.pop(container_id, None)
        forget_lock(container_id)

    def stop_all(self) -> None:
        """Stop every copier for good (the shim is closing)."""
        self._closed = True
        with self._lock:
            follows = list(self._follows.values())
        for current in follows:
            self._cut(current)
        self._copiers.stop_all()

    @staticmethod
    def _cut(current: _Follow) -> None:
        with current.lock:
            current.stopping = True
        shutdown(current.response)

    def _source(self, container_id: str, path: str, tty: bool, floor: int | None) -> LogSource:
        def source(since_ns: int | None, stop: threading.Event) -> Iterator[LogRecord]:
            with _sole_copier(container_id) as sole:
                if not sole:
                    # another pycri process on this daemon copies it: writing too would
                    # double every line; look again later (it may exit)
                    log.debug("another process copies the log of %s", container_id[:13])
                    self._elsewhere[container_id] = time.monotonic() + ELSEWHERE_RETRY
                    return
                # since_ns comes from core's resume_point, which also reads the newest
                # rotated file when the live one is new: nothing is copied twice
                skip_until = floor if since_ns is None else None
                for record in self._read(container_id, since_ns or skip_until, tty, stop):
                    if skip_until is not None and record.timestamp_ns <= skip_until:
                        continue
                    yield record

        return source

    def _read(
        self, container_id: str, since_ns: int | None, tty: bool, stop: threading.Event
    ) -> Iterator[LogRecord]:
        """Follow the log; when the stream ends by itself, read what it missed.

        dockerd 20.10 sometimes ends a follow before sending the last entries
        of a container that just exited (seen: the final unterminated line,
        about one time in six). The log file is complete by then, so one more
        read without ``follow``, from the last timestamp seen, catches up;
        entries already sent (counted per timestamp) are skipped.
        """
        last, same = since_ns, 0  # nothing sent yet: the copier skips what its file holds
        for record in self._stream(container_id, since_ns, tty, stop, follow=True):
            if record is None:  # the stream was cut: stopped, or the daemon went away
                return
            if record.timestamp_ns == last and same > 0:
                same += 1
            else:
                last, same = record.timestamp_ns, 1
            yield record
        if stop.is_set():
            return
        for record in self._stream(container_id, last, tty, stop, follow=False):
            if record is None:
                return
            if record.timestamp_ns == last and same > 0:
                same -= 1
                continue
            yield record

    def _stream(
        self,
        container_id: str,
        since_ns: int | None,
        tty: bool,
        stop: threading.Event,
        *,
        follow: bool,
    ) -> Iterator[LogRecord | None]:
        """Docker's log entries from ``since_ns``; a final None when cut short."""
        params: dict[str, object] = {"stdout": 1, "stderr": 1, "timestamps": 1}
        if follow:
            params["follow"] = 1
        if since_ns is not None:
            seconds, nanos = divmod(since_ns, 1_000_000_000)
            params["since"] = f"{seconds}.{nanos:09d}"  # Docker reads the digits as ns
        what = f"following the log of {container_id[:13]}"
        try:
            response = open_stream(
                self._conn.api, "GET", f"/containers/{container_id}/logs", params=params
            )
        except Exception as err:
            mapped = translate(err, what, self._conn.base_url) or err
            # gone or being removed: nothing left to copy
            quiet = isinstance(mapped, NotFoundError | FailedPreconditionError)
            log.log(logging.DEBUG if quiet else logging.WARNING, "%s", mapped)
            yield None
            return
        current = _Follow(response, cuttable=follow and not tty)
        with self._lock:
            self._follows[container_id] = current
        try:
            if stop.is_set() or self._closed:  # stopped while the stream was opening
                yield None
                return
            yield from (_tty_records if tty else _multiplexed_records)(response)
        except Exception as err:
            with current.lock:
                quiet = current.stopping or stop.is_set()
                if current.exited and not quiet:
                    return  # cut by drain_exited: the caller reads the rest
            if not quiet:
                # the daemon went away mid-stream; a later list or reconnect resumes it
                log.warning(
                    "%s stopped: %s", what, translate(err, what, self._conn.base_url) or err
                )
            yield None
        finally:
            with self._lock:
                if self._follows.get(container_id) is current:
                    del self._follows[container_id]
            response.close()
