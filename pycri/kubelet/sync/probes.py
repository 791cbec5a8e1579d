"""Exec probes through ``ExecSync``: schedules, thresholds and results per container.

A :class:`ProbeTracker` is the pure part (is a probe due, what does one
more success or failure change); :class:`ProbeManager` runs due probes
for a pod and remembers results by container id, which the kubelet
persists so that another process computes the same readiness.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError, DeadlineExceededError
from pycri.kubelet.model.spec import Container, ExecProbe, ProbeKind
from pycri.kubelet.sync.observed import ObservedContainer

__all__ = ["KINDS", "ProbeManager", "ProbeOutcome", "ProbeTracker", "ProbeView"]

KINDS: tuple[ProbeKind, ...] = ("startup", "liveness", "readiness")
#: extra seconds the gRPC call may take beyond the probe's own timeout
_CALL_SLACK = 5.0


@dataclass
class ProbeTracker:
    """One probe of one container: when it runs next and its result so far."""

    probe: ExecProbe
    successes: int = 0
    failures: int = 0
    #: None until a threshold is reached once
    result: bool | None = None
    last_run: float = 0.0

    def due(self, now: float, started_at: float) -> bool:
        if now < started_at + self.probe.initial_delay_seconds:
            return False
        return self.last_run == 0.0 or now >= self.last_run + self.probe.period_seconds

    def record(self, success: bool, now: float) -> bool:
        """Count one result; True when the probe's result changed."""
        self.last_run = now
        before = self.result
        if success:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.probe.success_threshold:
                self.result = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= self.probe.failure_threshold:
                self.result = False
        return self.result != before


@dataclass(frozen=True)
class ProbeView:
    """What the probes say about one running container."""

    started: bool = True
    ready: bool = True
    #: "" or the probe kind that failed and wants the container killed
    failed: str = ""


@dataclass(frozen=True)
class ProbeOutcome:
    container: str
    kind: ProbeKind
    success: bool
    output: str
    changed: bool


@dataclass
class _ContainerProbes:
    trackers: dict[str, ProbeTracker] = field(default_factory=dict)


class ProbeManager:
    """Probe state of every running container, keyed by container id."""

    def __init__(self, client: CRIClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._state: dict[str, _ContainerProbes] = {}

    def view(self, container: Container, running: ObservedContainer) -> ProbeView:
        with self._lock:
            probes = self._state.get(running.id)
            trackers = dict(probes.trackers) if probes else {}
        return view_of(container, {kind: t.result for kind, t in trackers.items()})

    def results(self, container_id: str) -> dict[str, bool | None]:
        with self._lock:
            probes = self._state.get(container_id)
            return {k: t.result for k, t in probes.trackers.items()} if probes else {}

    def run_due(
        self, container: Container, running: ObservedContainer, now: float
    ) -> list[ProbeOutcome]:
        """Run the probes of ``container`` that are due, in kubelet order (startup first)."""
        outcomes = []
        started_at = running.started_at / 1e9
        for kind in KINDS:
            probe = container.probe(kind)
            if probe is None:
                continue
            tracker = self._tracker(running.id, kind, probe)
            if kind != "startup" and container.startup_probe is not None:
                startup = self._tracker(running.id, "startup", container.startup_probe)
                if startup.result is not True:
                    continue  # liveness and readiness wait until the container has started
            if kind == "startup" and tracker.result is True:
                continue  # a startup probe stops once it succeeded
            if not tracker.due(now, started_at):
                continue
            ran = self._exec(running.id, probe)
            if ran is None:
                continue  # the container went away: its next relist tells
            success, output = ran
            with self._lock:
                changed = tracker.record(success, now)
            outcomes.append(ProbeOutcome(container.name, kind, success, output, changed))
        return outcomes

    def _tracker(self, container_id: str, kind: str, probe: ExecProbe) -> ProbeTracker:
        with self._lock:
            probes = self._state.setdefault(container_id, _ContainerProbes())
            tracker = probes.trackers.get(kind)
            if tracker is None or tracker.probe != probe:
                tracker = probes.trackers[kind] = ProbeTracker(probe)
            return tracker

    def _exec(self, container_id: str, probe: ExecProbe) -> tuple[bool, str] | None:
        request = cri.ExecSyncRequest(
            container_id=container_id, cmd=list(probe.command), timeout=probe.timeout_seconds
        )
        try:
            response = self.client.exec_sync(request, timeout=probe.timeout_seconds + _CALL_SLACK)
        except DeadlineExceededError:
            return False, f"command timed out after {probe.timeout_seconds}s"
        except CRIError:
            return None
        output = (response.stdout + response.stderr).decode(errors="replace").strip()
        return response.exit_code == 0, output

    def retain(self, container_ids: Iterable[str]) -> None:
        """Forget containers that are no longer running."""
        keep = set(container_ids)
        with self._lock:
            for cid in [c for c in self._state if c not in keep]:
                del self._state[cid]

    def dump(self, container_ids: Iterable[str]) -> dict[str, dict[str, bool | None]]:
        with self._lock:
            return {
                cid: {kind: t.result for kind, t in self._state[cid].trackers.items()}
                for cid in container_ids
                if cid in self._state
            }

    def load(self, container_id: str, results: Mapping[str, Any], container: Container) -> None:
        """Adopt results persisted by an earlier kubelet (of the same container id)."""
        with self._lock:
            probes = self._state.setdefault(container_id, _ContainerProbes())
            for kind in KINDS:
                probe = container.probe(kind)
                value = results.get(kind)
                if probe is not None and kind not in probes.trackers and isinstance(value, bool):
                    probes.trackers[kind] = ProbeTracker(probe, result=value)


def view_of(container: Container, results: Mapping[str, bool | None]) -> ProbeView:
    """Readiness and liveness of a running container from its probe results."""
    started = container.startup_probe is None or results.get("startup") is True
    if container.startup_probe is not None and results.get("startup") is False:
        return ProbeView(started=False, ready=False, failed="startup")
    if started and container.liveness_probe is not None and results.get("liveness") is False:
        return ProbeView(started=True, ready=False, failed="liveness")
    if not started:
        return ProbeView(started=False, ready=False)
    ready = container.readiness_probe is None or results.get("readiness") is True
    return ProbeView(started=True, ready=ready)
