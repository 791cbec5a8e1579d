"""Times as kubectl prints them: ages (``5m3s``) and RFC 3339 timestamps."""

from __future__ import annotations

import time

__all__ = ["apimachinery_human_duration", "rfc1123z", "rfc3339"]


def apimachinery_human_duration(seconds: float) -> str:
    """kubectl's ages (``45s``, ``5m3s``, ``3h``, ``2d4h``).

    A transcription of ``HumanDuration`` in k8s.io/apimachinery/pkg/util/duration
    (duration.go), which kubectl's AGE columns print; crictl's wordier
    ``About a minute`` is :func:`pycri.cli.units.go_units_human_duration`.
    """
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return f"{days // 365}y{days % 365}d"
    return f"{hours // 24 // 365}y"


def rfc3339(epoch: float) -> str | None:
    """``2024-05-01T12:00:00Z`` (None for an unset time, as the API writes null)."""
    if epoch <= 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def rfc1123z(epoch: float) -> str:
    """``Mon, 02 Jan 2006 15:04:05 +0000``, as ``kubectl describe`` prints times."""
    if epoch <= 0:
        return "<unknown>"
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))
