"""When to restart an exited container: the restart policy and CrashLoopBackOff.

The schedule is the kubelet's (``flowcontrol.Backoff`` with 10 s initial,
5 min cap): the first restart is immediate, then 10 s, 20 s, 40 s ... 300 s
after the previous exit, and a container that ran for more than 10 min
(twice the cap) starts the schedule again.

The real kubelet keeps this in memory, so restarting it forgets every
back-off. Here the back-off that applies when a container exits is written
on the container itself (annotation ``kubelet.pycri.io/crash-backoff``) when
it is created, so the schedule is derived from the runtime alone: a
restarted kubelet, or ``pycri-kubelet get pods`` in another process,
computes the same ``CrashLoopBackOff`` as the daemon.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pycri.kubelet.model.spec import RestartPolicy
from pycri.kubelet.sync.observed import ObservedContainer

__all__ = [
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "ImageBackoff",
    "Restart",
    "next_restart",
    "should_restart",
]

INITIAL_BACKOFF = 10
MAX_BACKOFF = 300
#: a container that ran this long starts the schedule again (flowcontrol's 2 * max)
RESET_AFTER = 2 * MAX_BACKOFF


def should_restart(policy: RestartPolicy, exit_code: int) -> bool:
    """The restart policy table: Always, OnFailure (non-zero exit), Never."""
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False


@dataclass(frozen=True)
class Restart:
    """The next restart of an exited container."""

    #: seconds since the epoch; now or earlier means restart at once
    not_before: float
    #: the back-off the new container carries (applies when *it* exits)
    next_backoff: int
    #: the back-off being waited out (0: none)
    delay: int


def next_restart(exited: ObservedContainer) -> Restart:
    """When ``exited`` may be restarted, from what the runtime recorded about it."""
    finished = exited.finished_at / 1e9
    started = (exited.started_at or exited.created_at) / 1e9
    backoff = exited.backoff
    if backoff <= 0 or (finished and started and finished - started > RESET_AFTER):
        return Restart(not_before=finished, next_backoff=INITIAL_BACKOFF, delay=0)
    return Restart(
        not_before=finished + backoff,
        next_backoff=min(backoff * 2, MAX_BACKOFF),
        delay=backoff,
    )


class ImageBackoff:
    """ImagePullBackOff: 10 s doubling to 5 min per (pod, image); in memory, as the kubelet's."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def remaining(self, pod_uid: str, image: str, now: float) -> float:
        with self._lock:
            entry = self._entries.get((pod_uid, image))
        if entry is None:
            return 0.0
        delay, failed_at = entry
        return max(0.0, failed_at + delay - now)

    def failed(self, pod_uid: str, image: str, now: float) -> float:
        """Record a failed pull; the back-off before the next attempt."""
        with self._lock:
            delay, _ = self._entries.get((pod_uid, image), (INITIAL_BACKOFF / 2, 0.0))
            delay = min(delay * 2, MAX_BACKOFF)
            self._entries[(pod_uid, image)] = (delay, now)
            return delay

    def succeeded(self, pod_uid: str, image: str) -> None:
        with self._lock:
            self._entries.pop((pod_uid, image), None)

    def forget_pod(self, pod_uid: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == pod_uid]:
                del self._entries[key]
