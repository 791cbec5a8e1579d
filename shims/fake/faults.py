"""Fault injection for tests: fail the next calls of an RPC, or slow them down.

Faults apply where core asks the shim first (``Shim.before_rpc``), so they
hit every path a CRI client takes — in process through
:class:`pycri.core.CRIRuntime` or over gRPC — and are keyed by the CRI RPC
name (``"RunPodSandbox"``, ``"PullImage"``...; ``"*"`` means every RPC).
"""

from __future__ import annotations

import difflib
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from functools import cache

import grpc

from pycri.api import api_pb2 as cri
from pycri.errors import CRIError, error_for_code

__all__ = ["ANY_RPC", "FaultInjector", "rpc_names"]

#: matches every RPC
ANY_RPC = "*"


@cache
def rpc_names() -> frozenset[str]:
    """Every RPC of the CRI services (RuntimeService and ImageService)."""
    return frozenset(
        method.name
        for service in cri.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    )


def _check_rpc(rpc: str) -> str:
    if rpc == ANY_RPC or rpc in rpc_names():
        return rpc
    close = difflib.get_close_matches(rpc, sorted(rpc_names()), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"{rpc!r} is not a CRI RPC name{hint}")


@dataclass
class _Failure:
    code: grpc.StatusCode | type[CRIError]
    message: str | None
    remaining: int

    def error(self, rpc: str) -> CRIError:
        status = self.code if isinstance(self.code, grpc.StatusCode) else self.code.code
        message = self.message or f"injected fault: {rpc} fails with {status.name}"
        if isinstance(self.code, grpc.StatusCode):
            return error_for_code(self.code, message, rpc=rpc)
        return self.code(message, rpc=rpc)


@dataclass
class _Latency:
    seconds: float
    remaining: int | None


class FaultInjector:
    """Scripted failures and delays, applied by :meth:`apply` before each RPC."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque[_Failure]] = {}
        self._latencies: dict[str, list[_Latency]] = {}
        #: how many times each RPC was called (faults or not), for assertions
        self.calls: Counter[str] = Counter()

    def fail_next(
        self,
        rpc: str,
        code: grpc.StatusCode | type[CRIError],
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Fail the next ``times`` calls of ``rpc`` with ``code`` (a status or CRIError class)."""
        _check_rpc(rpc)
        if times < 1:
            raise ValueError("times must be at least 1")
        if code == grpc.StatusCode.OK:
            raise ValueError("StatusCode.OK is not a failure")
        if not isinstance(code, grpc.StatusCode) and not (
            isinstance(code, type) and issubclass(code, CRIError)
        ):
            raise TypeError(f"code must be a grpc.StatusCode or a CRIError class, not {code!r}")
        with self._lock:
            self._failures.setdefault(rpc, deque()).append(_Failure(code, message, times))

    def add_latency(self, rpc: str, seconds: float, times: int | None = None) -> None:
        """Delay the next ``times`` calls of ``rpc`` (None: every call until cleared)."""
        _check_rpc(rpc)
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every call)")
        with self._lock:
            self._latencies.setdefault(rpc, []).append(_Latency(seconds, times))

    def clear(self, rpc: str | None = None) -> None:
        """Drop pending faults: those of ``rpc``, or all of them."""
        with self._lock:
            if rpc is None:
                self._failures.clear()
                self._latencies.clear()
            else:
                self._failures.pop(_check_rpc(rpc), None)
                self._latencies.pop(rpc, None)

    @property
    def pending(self) -> bool:
        """Whether any failure or latency is still scheduled."""
        with self._lock:
            return any(self._failures.values()) or any(self._latencies.values())

    def apply(self, rpc: str) -> None:
        """Serve the faults scheduled for ``rpc``: sleep, then raise if one is due."""
        delay = 0.0
        error: CRIError | None = None
        with self._lock:
            self.calls[rpc] += 1
            for key in (rpc, ANY_RPC):
                for latency in self._latencies.get(key, []):
                    delay += latency.seconds
                    if latency.remaining is not None:
                        latency.remaining -= 1
                if key in self._latencies:
                    self._latencies[key] = [
                        lat for lat in self._latencies[key] if lat.remaining != 0
                    ]
            for key in (rpc, ANY_RPC):
                queue = self._failures.get(key)
                if queue:
                    failure = queue[0]
                    failure.remaining -= 1
                    if failure.remaining == 0:
                        queue.popleft()
                    error = failure.error(rpc)
                    break
        if delay:
            time.sleep(delay)  # outside the lock: other RPCs are not held up
        if error is not None:
            raise error
