"""Reservation of pod and container names while one is being created.

The durable record of a name is the runtime itself (core checks the
runtime's list before creating); this only closes the race between two
concurrent creates of the same name, the way containerd's name index does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pycri.errors import AlreadyExistsError

__all__ = ["NameReservations"]


class NameReservations:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()

    @contextmanager
    def reserve(self, key: str, what: str) -> Iterator[None]:
        with self._lock:
            if key in self._held:
                raise AlreadyExistsError(f"{what} {key!r} is being created by another request")
            self._held.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(key)
