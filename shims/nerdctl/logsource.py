"""Follow nerdctl's json-file log of a container, as a LogCopier source.

Reading the file nerdctl's logging driver writes costs no process at all,
where ``nerdctl logs -f`` would keep one nerdctl (and a containerd
connection) per running container. Lines are docker json-file records
``{"log": "...\\n", "stream": "stdout", "time": "<RFC3339Nano>"}``. The
follower sleeps until its file's directory changes or the container's
init exits (:mod:`pycri.core.wakeups`), or, where that cannot be watched,
polls with a backoff. It ends once the init process is gone and the file
has been quiet for a moment (the logging driver may still be flushing), or
at once after reading to the end when ``done`` is set (the container was
removed, or the shim is closing).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from pycri.core.logcopy import LogRecord, LogSource
from pycri.core.logs import parse_timestamp
from pycri.core.wakeups import Watch

__all__ = ["json_log_source", "parse_record"]

log = logging.getLogger(__name__)

_MIN_POLL = 0.05
_MAX_POLL = 0.5
#: seconds between checks whether the container still runs
_CHECK_EVERY = 1.0
#: how long the file must stay quiet after the container died
_QUIET = 0.5
#: the longest sleep of a watched follower (a safety net: the watch wakes it)
_WATCHED_SLEEP = 10.0
_READ = 256 * 1024


def parse_record(raw: bytes) -> LogRecord | None:
    """One json-file line; None for anything that is not a log record."""
    try:
        entry = json.loads(raw)
        text: str = entry["log"]
        stream = entry.get("stream", "stdout")
        timestamp = parse_timestamp(entry["time"])
    except (ValueError, KeyError, TypeError):
        return None
    data = text.encode()
    partial = not data.endswith(b"\n")
    return LogRecord(
        stream="stderr" if stream == "stderr" else "stdout",
        timestamp_ns=timestamp,
        line=data[:-1] if not partial else data,
        partial=partial,
    )


def json_log_source(
    path: str,
    alive: Callable[[], bool],
    done: threading.Event,
    offset: int = 0,
    watch: Callable[[], Watch] | None = None,
) -> LogSource:
    """A LogSource over the json log at ``path``; ``alive`` says if the container runs.

    Reading starts ``offset`` bytes into the file (attach passes its size
    at the time, to follow only what is logged from then on). ``watch``
    opens the follower's watch as it starts (closed as it ends); whoever
    sets ``done`` then sets the watch's event too, or the follower notices
    only at its next wake.
    """

    def follow(since_ns: int | None, stop: threading.Event) -> Iterator[LogRecord]:
        handle: BinaryIO | None = None
        pending = b""
        poll = _MIN_POLL
        dead_at: float | None = None
        next_check = 0.0
        woken = watch() if watch is not None else None
        try:
            while not stop.is_set():
                if woken is not None:
                    woken.event.clear()  # before reading: a later write sets it again
                if handle is None:
                    try:
                        handle = open(path, "rb")  # noqa: SIM115 - kept open while following
                    except FileNotFoundError:
                        handle = None
                    else:
                        # a record cut by the seek does not parse and is skipped
                        handle.seek(offset)
                chunk = handle.read(_READ) if handle is not None else b""
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        record = parse_record(raw)
                        if record is None:
                            continue
                        if since_ns is not None and record.timestamp_ns < since_ns:
                            continue
                        yield record
                    poll = _MIN_POLL
                    if dead_at is not None:
                        dead_at = time.monotonic()  # still flushing: wait for quiet again
                    continue
                if done.is_set():
                    return  # read to the end: nothing more will come
                now = time.monotonic()
                if dead_at is None and now >= next_check:
                    # a watched exit wakes us: then every wake may be it
                    next_check = now if woken is not None and woken.exit else now + _CHECK_EVERY
                    if not alive():
                        dead_at = now
                elif dead_at is not None and now - dead_at >= _QUIET:
                    return
                if dead_at is None and woken is not None and woken.directory:
                    woken.event.wait(_WATCHED_SLEEP if woken.exit else _CHECK_EVERY)
                    continue
                # ``done`` wakes us for the last read; ``stop`` is checked each turn
                done.wait(poll if dead_at is None else _MIN_POLL)
                poll = min(poll * 2, _MAX_POLL)
        finally:
            if woken is not None:
                woken.close()
            if handle is not None:
                handle.close()

    return follow
