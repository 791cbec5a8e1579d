"""The one-time token cache behind streaming URLs (the kubelet's requestCache rules)."""

from __future__ import annotations

import pytest

from pycri.errors import ResourceExhaustedError
from pycri.streaming.tokens import TokenCache, TokenState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_token_redeems_its_request_once(clock: Clock) -> None:
    cache: TokenCache[str] = TokenCache(clock=clock)
    token = cache.insert("exec ls")
    assert len(token) >= 32  # 192 random bits, URL-safe
    assert token.replace("-", "").replace("_", "").isalnum()
    first = cache.consume(token)
    assert (first.state, first.request) == (TokenState.VALID, "exec ls")
    again = cache.consume(token)
    assert (again.state, again.request) == (TokenState.USED, None)
    assert len(cache) == 0


def test_unknown_tokens_are_refused(clock: Clock) -> None:
    cache: TokenCache[str] = TokenCache(clock=clock)
    assert cache.consume("fooBAR").state is TokenState.UNKNOWN


def test_tokens_expire_after_the_ttl(clock: Clock) -> None:
    cache: TokenCache[str] = TokenCache(ttl=60, clock=clock)
    early, late = cache.insert("a"), cache.insert("b")
    clock.now += 60
    assert cache.consume(early).state is TokenState.VALID  # exactly at the TTL: still valid
    clock.now += 0.001
    assert cache.consume(late).state is TokenState.EXPIRED
    assert cache.consume(late).state is TokenState.EXPIRED


def test_expired_tokens_are_collected_and_eventually_forgotten(clock: Clock) -> None:
    cache: TokenCache[str] = TokenCache(ttl=10, clock=clock)
    tokens = [cache.insert(str(i)) for i in range(5)]
    clock.now += 11
    fresh = cache.insert("fresh")  # inserting collects the expired ones
    assert len(cache) == 1
    assert cache.consume(tokens[0]).state is TokenState.EXPIRED
    clock.now += 21  # a spent token is remembered for one more TTL, then forgotten
    assert cache.consume(tokens[1]).state is TokenState.UNKNOWN
    assert cache.consume(fresh).state is TokenState.EXPIRED


def test_too_many_pending_tokens_is_resource_exhausted(clock: Clock) -> None:
    cache: TokenCache[int] = TokenCache(max_in_flight=3, clock=clock)
    tokens = [cache.insert(i) for i in range(3)]
    with pytest.raises(ResourceExhaustedError, match="too many streaming requests"):
        cache.insert(99)
    assert cache.consume(tokens[1]).request == 1  # redeeming makes room
    cache.insert(4)
    clock.now += 61  # so does expiry
    for i in range(3):
        cache.insert(i)


def test_tokens_are_unique(clock: Clock) -> None:
    cache: TokenCache[int] = TokenCache(max_in_flight=2000, clock=clock)
    tokens = {cache.insert(i) for i in range(1000)}
    assert len(tokens) == 1000
