"""Container lifecycle events for GetContainerEvents, fanned out to subscribers."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from pycri.api import api_pb2 as cri

__all__ = ["EventBus", "Subscription"]


class Subscription:
    """One GetContainerEvents stream; a slow reader loses the oldest events, not the server."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: queue.Queue[cri.ContainerEventResponse | None] = queue.Queue(maxsize)

    def put(self, event: cri.ContainerEventResponse) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass

    def events(self, poll: float = 0.5) -> Iterator[cri.ContainerEventResponse | None]:
        """Events as they come; ``None`` every ``poll`` s lets the caller check liveness."""
        while True:
            try:
                item = self._queue.get(timeout=poll)
            except queue.Empty:
                yield None
                continue
            yield item

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    def __init__(self, maxsize: int = 1000) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._maxsize = maxsize

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self._maxsize)
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def publish(self, event: cri.ContainerEventResponse) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.put(event)
