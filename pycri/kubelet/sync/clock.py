"""Wall-clock time for the kubelet's decisions, injectable for tests.

Back-off and probe schedules compare the clock with the runtime's own
timestamps (``finished_at``, ``started_at``: nanoseconds since the epoch),
so the clock is wall time. :class:`ManualClock` moves that time forward
without sleeping: tests skip a 5-minute back-off in an instant.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """Real time plus an offset that :meth:`advance` grows."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
