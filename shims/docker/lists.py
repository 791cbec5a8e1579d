"""Docker's list of pycri's containers, shared by the two halves of a relist.

The kubelet relists every second with ListPodSandbox then ListContainers,
back to back. With a ``window`` (seconds, opt-in: shim option
``list_window``), one ``GET /containers/json`` answers both when the second
comes within the window of the first: half the Docker calls, and pods and
containers from one consistent snapshot (two calls can see a container
whose pod the first call missed). It does not make a relist faster: the one
call returns all containers (benchmarks/bench_docker.py measures both).

Freshness is kept where it matters: anything changed through this shim
(run, create, start, stop, remove) discards the snapshot, so a caller
always lists what it has just done; only changes Docker makes on its own
(a container exiting) can show up to ``window`` seconds late, and
ContainerStatus / PodSandboxStatus always ask Docker afresh. With
``window=0`` every list is its own Docker call, narrowed by the filter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pycri.core.engine import KIND_LABEL, METADATA_LABEL
from pycri_shims.docker.connection import DockerConnection

__all__ = ["ListSnapshot"]

Entry = Mapping[str, Any]


class ListSnapshot:
    """Lists pycri's containers of one kind; see the module docstring."""

    def __init__(self, connection: DockerConnection, window: float = 0.0) -> None:
        self._conn = connection
        self.window = window
        self._lock = threading.Lock()
        self._bump = threading.Lock()
        self._generation = 0
        self._taken: tuple[int, float, list[Entry]] | None = None

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Wrap a change made through the shim: no snapshot from before or during it is used."""
        with self._bump:
            self._generation += 1
        try:
            yield
        finally:
            with self._bump:
                self._generation += 1

    def entries(self, kind: str, filters: dict[str, list[str]]) -> list[Entry]:
        """Docker's list entries of ``kind``; ``filters`` narrow a call made for this list alone."""
        if self.window <= 0:
            return self._fetch(filters, f"listing {kind}s")
        with self._lock:  # concurrent lists share one call too
            snapshot = self._taken
            now = time.monotonic()
            if (
                snapshot is None
                or snapshot[0] != self._generation
                or now - snapshot[1] > self.window
            ):
                generation = self._generation
                found = self._fetch({"label": [KIND_LABEL, METADATA_LABEL]}, "listing containers")
                snapshot = self._taken = (generation, now, found)
        return [e for e in snapshot[2] if (e.get("Labels") or {}).get(KIND_LABEL) == kind]

    def _fetch(self, filters: dict[str, list[str]], what: str) -> list[Entry]:
        with self._conn.errors(what):
            found: list[Entry] = self._conn.api.containers(all=True, filters=filters)
        return found
