"""Small parsers and formatters shared by the commands: durations, sizes, ids, times."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime

__all__ = [
    "TRUNCATED_ID_LEN",
    "ago",
    "go_time",
    "go_time_string",
    "go_units_human_duration",
    "human_size",
    "parse_duration",
    "parse_labels",
    "parse_since",
    "truncate_id",
]

TRUNCATED_ID_LEN = 13
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration (``2s``, ``1m30s``, ``500ms``) in seconds.

    A bare number is taken as seconds, which crictl's users often type.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    sign = -1.0 if value.startswith("-") else 1.0
    body = value.lstrip("+-")
    try:
        return sign * float(body)
    except ValueError:
        pass
    total, pos = 0.0, 0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r} (use e.g. 2s, 500ms, 1m30s)")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def go_units_human_duration(seconds: float) -> str:
    """crictl's ages (``2 seconds``, ``About a minute``, ``3 hours``).

    A transcription of ``HumanDuration`` in github.com/docker/go-units
    (duration.go), which crictl's CREATED columns print; kubectl's shorter
    ``5m3s`` is :func:`pycri.kubelet.cli.timefmt.apimachinery_human_duration`.
    """
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(created_ns: int, now_ns: int | None = None) -> str:
    """The CREATED column: ``N seconds ago``."""
    now = time.time_ns() if now_ns is None else now_ns
    return go_units_human_duration((now - created_ns) / 1e9) + " ago"


def human_size(size: float, precision: int = 4) -> str:
    """docker/go-units HumanSizeWithPrecision: decimal units, ``%.Ng``."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    index = 0
    while size >= 1000.0 and index < len(units) - 1:
        size /= 1000.0
        index += 1
    return f"{size:.{precision}g}{units[index]}"


def truncate_id(value: str, prefix: str = "") -> str:
    """crictl's 13-character ids, after dropping ``prefix`` (e.g. ``sha256:``)."""
    return value.removeprefix(prefix)[:TRUNCATED_ID_LEN]


def parse_labels(pairs: Iterable[str]) -> dict[str, str]:
    """``key=value`` strings to a dict (crictl's --label)."""
    labels: dict[str, str] = {}
    for pair in pairs:
        parts = pair.split("=")
        if len(parts) != 2:
            raise ValueError(f"incorrectly specified label: {pair} (use key=value)")
        labels[parts[0]] = parts[1]
    return labels


def go_time(ns: int, *, zero: bool = False) -> str:
    """Go's ``time.Unix(0, ns).Format(time.RFC3339Nano)`` in local time."""
    if zero:
        return _ZERO_TIME
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds).astimezone()
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += f".{frac:09d}".rstrip("0")
    offset = stamp.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    if minutes == 0:
        return text + "Z"
    sign = "+" if minutes > 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_since(text: str, now: float | None = None) -> int:
    """``--since``: a duration ago (``42m``), an RFC 3339 time or a unix time; ns."""
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return int(float(text) * 1e9)
    try:
        return int((now - parse_duration(text)) * 1e9)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        try:
            return int(float(text) * 1e9)
        except ValueError:
            raise ValueError(
                f"invalid --since {text!r}: use a duration (42m), "
                "a time (2013-01-02T13:23:37Z) or a unix timestamp"
            ) from None
    if stamp.tzinfo is None:
        stamp = stamp.astimezone()  # a time without a zone is local, as in docker
    return int(stamp.astimezone(UTC).timestamp() * 1e9)


def go_time_string(ns: int) -> str:
    """Go's ``time.Unix(0, ns).String()``: ``2006-01-02 15:04:05.999999999 -0700 MST``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds).astimezone()
    text = stamp.strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        text += f".{frac:09d}".rstrip("0")
    return f"{text} {stamp.strftime('%z')} {stamp.tzname() or ''}".rstrip()
