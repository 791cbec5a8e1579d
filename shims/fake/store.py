"""The fake runtime's in-memory tables of pods and containers, and the lock that guards them.

Every resource module (sandboxes, containers, execsync, interactive, stats,
metrics, images) works on one :class:`FakeStore`, under its lock.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from pycri.api import api_pb2 as cri
from pycri.errors import NotFoundError, UnavailableError
from pycri_shims.fake.state import ContainerRecord, IPAllocator, SandboxRecord

__all__ = ["FakeStore", "Listing", "created_at"]

#: the order of ListPodSandbox and ListContainers
created_at = operator.attrgetter("created_at")
Entry = TypeVar("Entry", cri.Container, cri.PodSandbox)


class Listing(Generic[Entry]):
    """The complete list of one kind, kept until a change to what it shows.

    The shim calls :meth:`changed` (under its lock) whenever a record is
    added or removed, or its state changes: the state is the only field of
    a list entry that ever changes (``ContainerRecord.to_container``).
    """

    def __init__(self) -> None:
        self._generation = 0
        self._kept: tuple[int, list[Entry]] | None = None

    def changed(self) -> None:
        self._generation += 1

    def get(self, build: Callable[[], list[Entry]]) -> list[Entry]:
        kept = self._kept
        if kept is None or kept[0] != self._generation:
            kept = self._kept = (self._generation, build())
        return list(kept[1])


class FakeStore:
    """Pods and containers by id, pod IPs, and whether the runtime is closed."""

    def __init__(self, pod_cidr: str) -> None:
        #: re-entrant: a resource module may call another while holding it
        self.lock = threading.RLock()
        self.closed = False
        self.sandboxes: dict[str, SandboxRecord] = {}
        self.containers: dict[str, ContainerRecord] = {}
        #: the complete lists, kept between changes (the kubelet relists every second)
        self.pod_listing: Listing[cri.PodSandbox] = Listing()
        self.container_listing: Listing[cri.Container] = Listing()
        self.ipam = IPAllocator(pod_cidr)

    def check_open(self) -> None:
        if self.closed:
            raise UnavailableError("the fake runtime has been closed")

    def sandbox(self, pod_id: str) -> SandboxRecord:
        sandbox = self.sandboxes.get(pod_id)
        if sandbox is None:
            raise NotFoundError(f"pod sandbox {pod_id!r} not found")
        return sandbox

    def container(self, container_id: str) -> ContainerRecord:
        record = self.containers.get(container_id)
        if record is None:
            raise NotFoundError(f"container {container_id!r} not found")
        return record

    def members(self, pod_id: str) -> list[ContainerRecord]:
        """The containers of one pod (under the lock)."""
        return [c for c in self.containers.values() if c.pod_id == pod_id]
