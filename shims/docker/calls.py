"""Docker API calls per CRI RPC: what each RPC costs in requests to dockerd, and no more.

Every HTTP request the shim's Docker client sends is counted against the
RPC its thread is serving (core calls ``before_rpc``/``after_rpc`` around
each), or against ``background`` (log copiers, hooks). Status verbose
reports the totals as ``dockerCalls`` and benchmarks/bench_docker.py prints
them beside its timings; the integration tests hold the counts of the
lifecycle RPCs, so a call that creeps back in shows up as a number.

The same per-RPC scope keeps inspect answers (:meth:`DockerCallCounter.recall`):
core checks a pod's or container's state, then the shim reads the same
object again to act on it. Within one RPC, the second read gets the first's
answer, until the RPC itself changes something in Docker (any request other
than a GET forgets them all). Outside an RPC (log copiers, hooks, a shim
driven directly) nothing is kept.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BACKGROUND", "DockerCallCounter"]

log = logging.getLogger(__name__)

BACKGROUND = "background"
_ID = re.compile(r"/[0-9a-f]{12,64}(?=/|$)")
_VERSION = re.compile(r"^/v[0-9.]+")


@dataclass
class _Tally:
    rpcs: int = 0
    calls: int = 0
    seconds: float = 0.0


@dataclass
class _Current:
    rpc: str = BACKGROUND
    calls: list[str] = field(default_factory=list)
    #: inspect answers since the RPC's last change (never kept for BACKGROUND)
    inspected: dict[str, Mapping[str, Any]] = field(default_factory=dict)


def endpoint(method: str, url: str) -> str:
    """``GET /containers/{id}/json`` for a request's method and URL (ids and API version out)."""
    path = url.split("://", 1)[-1]
    path = path[path.find("/") :] if "/" in path else "/"
    path = _VERSION.sub("", path.split("?", 1)[0])
    return f"{method.upper()} {_ID.sub('/{id}', path)}"


class DockerCallCounter:
    """Docker API requests per CRI RPC: per thread for the RPC in flight, and totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, _Tally] = {}
        self._local = threading.local()

    def _current(self) -> _Current:
        current: _Current | None = getattr(self._local, "current", None)
        if current is None:
            current = self._local.current = _Current()
        return current

    def begin(self, rpc: str) -> None:
        """A new RPC starts on this thread."""
        self.finish()  # in case the last one ended without after_rpc
        self._local.current = _Current(rpc=rpc)
        with self._lock:
            self._totals.setdefault(rpc, _Tally()).rpcs += 1

    def finish(self) -> None:
        """The RPC on this thread is done: log what it asked of Docker."""
        current: _Current | None = getattr(self._local, "current", None)
        if current is not None and current.rpc != BACKGROUND:
            calls = current.calls
            log.debug("%s made %d Docker call(s): %s", current.rpc, len(calls), calls)
        self._local.current = None

    def record(self, call: str, seconds: float) -> None:
        """Count one request against this thread's RPC (a change forgets its inspects)."""
        current = self._current()
        current.calls.append(call)
        if not call.startswith("GET "):
            current.inspected.clear()
        with self._lock:
            tally = self._totals.setdefault(current.rpc, _Tally())
            tally.calls += 1
            tally.seconds += seconds

    def recall(self, container_id: str) -> Mapping[str, Any] | None:
        """The inspect answer this thread's RPC got for ``container_id``, if still good."""
        return self._current().inspected.get(container_id)

    def remember(self, container_id: str, data: Mapping[str, Any]) -> None:
        current = self._current()
        if current.rpc != BACKGROUND:
            current.inspected[container_id] = data

    def serving(self) -> str:
        """The RPC this thread serves (BACKGROUND outside one)."""
        return self._current().rpc

    def current(self) -> list[str]:
        """The requests made so far by the RPC this thread serves."""
        return list(self._current().calls)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per RPC: calls served, Docker requests, requests per call, seconds in Docker."""
        with self._lock:
            return {
                rpc: {
                    "rpcs": t.rpcs,
                    "calls": t.calls,
                    "per_rpc": round(t.calls / t.rpcs, 2) if t.rpcs else float(t.calls),
                    "seconds": round(t.seconds, 3),
                }
                for rpc, t in sorted(self._totals.items())
            }

    def instrument(self, api: Any) -> None:
        """Count every request of a ``docker.APIClient`` (a requests.Session underneath).

        Every docker-py call, streams and hijacked sockets included, ends in
        ``Session.request``; shadowing it on the instance counts them all.
        """
        send: Callable[..., Any] = api.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return send(method, url, *args, **kwargs)
            finally:
                self.record(endpoint(method, str(url)), time.perf_counter() - started)

        api.request = request
