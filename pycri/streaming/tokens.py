"""One-time tokens for streaming URLs, as the kubelet's ``requestCache`` hands them out.

Exec, Attach and PortForward return ``http://HOST:PORT/exec/TOKEN``; the
token maps to the request for one minute and can be redeemed once. Unlike
the kubelet's 8-character tokens, ours carry 192 random bits: the URL is
the only credential the streaming endpoint checks.
"""

from __future__ import annotations

import enum
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pycri.errors import ResourceExhaustedError

__all__ = ["MAX_IN_FLIGHT", "TOKEN_TTL", "Redeemed", "TokenCache", "TokenState"]

#: how long a URL stays valid (the kubelet's cacheTTL)
TOKEN_TTL = 60.0
#: outstanding URLs at most (the kubelet's maxInFlight)
MAX_IN_FLIGHT = 1000

T = TypeVar("T")


class TokenState(enum.Enum):
    VALID = "valid"
    UNKNOWN = "unknown"
    USED = "already used"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Redeemed(Generic[T]):
    """The outcome of :meth:`TokenCache.consume`: the request when ``VALID``."""

    state: TokenState
    request: T | None = None


class TokenCache(Generic[T]):
    """Single-use, expiring tokens for requests; thread safe."""

    def __init__(
        self,
        ttl: float = TOKEN_TTL,
        max_in_flight: int = MAX_IN_FLIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._lock = threading.Lock()
        # oldest first, so garbage collection stops at the first live entry
        self._live: OrderedDict[str, tuple[float, T]] = OrderedDict()
        # redeemed and expired tokens, kept one TTL to tell "used" from "unknown"
        self._spent: OrderedDict[str, tuple[float, TokenState]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            self._gc(self._clock())
            return len(self._live)

    def insert(self, request: T) -> str:
        """A fresh token for ``request``; RESOURCE_EXHAUSTED when too many are pending."""
        with self._lock:
            now = self._clock()
            self._gc(now)
            if len(self._live) >= self.max_in_flight:
                raise ResourceExhaustedError(
                    f"too many streaming requests in flight ({self.max_in_flight}); "
                    f"retry after {int(self.ttl)}s"
                )
            token = secrets.token_urlsafe(24)
            while token in self._live or token in self._spent:
                token = secrets.token_urlsafe(24)
            self._live[token] = (now + self.ttl, request)
            return token

    def consume(self, token: str) -> Redeemed[T]:
        """Redeem ``token`` once: the request, or why there is none."""
        with self._lock:
            now = self._clock()
            entry = self._live.pop(token, None)
            if entry is None:
                self._gc(now)
                spent = self._spent.get(token)
                return Redeemed(spent[1] if spent else TokenState.UNKNOWN)
            expires, request = entry
            if now > expires:
                self._spend(token, now, TokenState.EXPIRED)
                return Redeemed(TokenState.EXPIRED)
            self._spend(token, now, TokenState.USED)
            return Redeemed(TokenState.VALID, request)

    def _spend(self, token: str, now: float, state: TokenState) -> None:
        self._spent[token] = (now + self.ttl, state)
        while len(self._spent) > self.max_in_flight:
            self._spent.popitem(last=False)

    def _gc(self, now: float) -> None:
        while self._live:
            token, (expires, _) = next(iter(self._live.items()))
            if now <= expires:
                break
            del self._live[token]
            self._spend(token, now, TokenState.EXPIRED)
        while self._spent:
            token, (forget_at, _) = next(iter(self._spent.items()))
            if now <= forget_at:
                break
            del self._spent[token]
