"""Fan-out of events to subscribers: container lifecycle events, image pull progress."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["EventBus", "Subscription"]

T = TypeVar("T")


class Subscription(Generic[T]):
    """One subscriber; a slow reader loses the oldest events, not the server."""

    def __init__(self, bus: EventBus[T], maxsize: int) -> None:
        self._bus = bus
        self._queue: queue.Queue[T] = queue.Queue(maxsize)

    def put(self, event: T) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass

    def events(self, poll: float = 0.5) -> Iterator[T | None]:
        """Events as they come; ``None`` every ``poll`` s lets the caller check liveness."""
        while True:
            try:
                yield self._queue.get(timeout=poll)
            except queue.Empty:
                yield None

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus(Generic[T]):
    def __init__(self, maxsize: int = 1000) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscription[T]] = []
        self._maxsize = maxsize

    def subscribe(self) -> Subscription[T]:
        sub = Subscription(self, self._maxsize)
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def publish(self, event: T) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.put(event)
