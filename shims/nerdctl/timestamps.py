"""Timestamps as nerdctl prints them, to nanoseconds since the epoch."""

from __future__ import annotations

import calendar
import re
import time

from pycri.core.logs import parse_timestamp

__all__ = ["to_ns"]

# Go's time.Time.String(): "2026-11-27 12:29:37.123 +0000 UTC" (fraction optional)
_GO_STRING = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r" (?P<sign>[+-])(?P<hh>\d{2})(?P<mm>\d{2})(?: \S+)?$"
)


def to_ns(text: str | None) -> int:
    """RFC3339(Nano) or Go's fixed-width ``time.String`` form; 0 for zero/empty times."""
    if not text or text.startswith("0001-01-01"):
        return 0
    match = _GO_STRING.match(text)
    if match is not None:
        parsed = time.strptime(f"{match['date']} {match['time']}", "%Y-%m-%d %H:%M:%S")
        offset = (int(match["hh"]) * 3600 + int(match["mm"]) * 60) * (
            -1 if match["sign"] == "-" else 1
        )
        seconds = calendar.timegm(parsed) - offset
        nanos = int((match["frac"] or "").ljust(9, "0"))
        return seconds * 1_000_000_000 + nanos
    try:
        return parse_timestamp(text)
    except ValueError:
        raise ValueError(f"unrecognised timestamp {text!r}") from None
