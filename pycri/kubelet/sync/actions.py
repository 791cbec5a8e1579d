"""What one sync of a pod must do: the kubelet's ``computePodActions``, as a pure function.

Given the desired pod, the relist, the computed status, probe verdicts and
the clock, :func:`compute_actions` says which sandbox to create or stop,
which containers to start, kill or garbage-collect, and which wait out a
back-off. :mod:`pycri.kubelet.sync.podsync` carries the actions out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pycri.kubelet.model import labels as L
from pycri.kubelet.model.spec import Container, Pod
from pycri.kubelet.sync.backoff import next_restart
from pycri.kubelet.sync.criconfig import container_hash, sandbox_hash
from pycri.kubelet.sync.observed import ObservedContainer, ObservedPod
from pycri.kubelet.sync.probes import ProbeView
from pycri.kubelet.sync.status import PodStatus, Slot, slots

__all__ = ["KillContainer", "PodActions", "StartContainer", "compute_actions", "next_attempt"]

#: instances of one container kept: the current one and the one before (lastState)
KEEP_PER_CONTAINER = 2


@dataclass(frozen=True)
class StartContainer:
    spec: Container
    init: bool
    attempt: int
    #: crash-loop back-off the new container carries (applies when it exits)
    backoff: int
    #: a created, never started container to start instead of creating one
    reuse_id: str = ""


@dataclass(frozen=True)
class KillContainer:
    container_id: str
    name: str
    reason: str
    grace_period: int


@dataclass
class PodActions:
    #: stop every container and sandbox of the pod (before recreating it, or for good)
    kill_pod: bool = False
    kill_reason: str = ""
    create_sandbox: bool = False
    sandbox_attempt: int = 0
    start: list[StartContainer] = field(default_factory=list)
    kill: list[KillContainer] = field(default_factory=list)
    remove_containers: list[str] = field(default_factory=list)
    remove_sandboxes: list[str] = field(default_factory=list)
    #: (container, seconds left) for containers waiting out CrashLoopBackOff
    backing_off: list[tuple[str, float]] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not (
            self.kill_pod
            or self.create_sandbox
            or self.start
            or self.kill
            or self.remove_containers
            or self.remove_sandboxes
        )


def next_attempt(observed: ObservedPod | None, name: str) -> int:
    """The kubelet's restart count for a new instance: one more than the newest one."""
    if observed is None:
        return 0
    attempts = [c.attempt for c in observed.named(name)]
    return max(attempts) + 1 if attempts else 0


def _start(
    pod: Pod, observed: ObservedPod | None, slot: Slot, now: float, actions: PodActions
) -> None:
    """Start ``slot`` unless its newest instance is in back-off."""
    latest = slot.latest
    if latest is not None and not latest.running and not latest.exited:
        actions.start.append(
            StartContainer(slot.spec, slot.init, latest.attempt, latest.backoff, latest.id)
        )
        return
    newest = latest or slot.previous
    backoff = 0
    if newest is not None and newest.exited:
        changed = newest.spec_hash and newest.spec_hash != container_hash(slot.spec)
        restart = next_restart(newest)
        if not changed and restart.not_before > now:
            actions.backing_off.append((slot.spec.name, restart.not_before - now))
            return
        backoff = 0 if changed else restart.next_backoff
    actions.start.append(
        StartContainer(slot.spec, slot.init, next_attempt(observed, slot.spec.name), backoff)
    )


def _garbage(pod: Pod, observed: ObservedPod, actions: PodActions) -> None:
    """Old instances beyond lastState, instances of removed containers, old sandboxes."""
    names = {c.name for c in pod.spec.all_containers()}
    by_name: dict[str, list[ObservedContainer]] = {}
    for container in observed.containers:
        by_name.setdefault(container.name, []).append(container)
    killing = {k.container_id for k in actions.kill}
    for name, instances in by_name.items():
        keep = KEEP_PER_CONTAINER if name in names else 0
        for container in instances[keep:]:
            if not container.running and container.id not in killing:
                actions.remove_containers.append(container.id)
    sandbox = observed.sandbox
    if sandbox is None or not sandbox.ready:
        return
    # older sandboxes go once the pod has moved on into its current one
    if any(c.sandbox_id == sandbox.id for c in observed.containers):
        for old in observed.sandboxes[1:]:
            if not any(c.running for c in observed.containers if c.sandbox_id == old.id):
                actions.remove_sandboxes.append(old.id)


def compute_actions(
    pod: Pod,
    observed: ObservedPod | None,
    status: PodStatus,
    probe_view: Callable[[Container, ObservedContainer], ProbeView],
    now: float,
) -> PodActions:
    actions = PodActions()
    sandbox = observed.sandbox if observed else None
    grace = pod.spec.termination_grace_period_seconds
    if status.phase in ("Succeeded", "Failed"):
        # a finished pod keeps its exited containers (status, logs) but not its sandbox
        if observed is not None and (
            observed.running() or any(s.ready for s in observed.sandboxes)
        ):
            actions.kill_pod, actions.kill_reason = True, f"pod has {status.phase.lower()}"
        return actions
    wanted = sandbox_hash(pod)
    if sandbox is None or not sandbox.ready or sandbox.annotations.get(L.SANDBOX_HASH) != wanted:
        ran = observed is not None and bool(observed.containers)
        if pod.spec.restart_policy == "Never" and sandbox is not None and ran:
            # the kubelet does not recreate the sandbox of a pod that never restarts
            if observed is not None and observed.running():
                actions.kill_pod, actions.kill_reason = True, "pod sandbox changed"
            return actions
        if observed is not None and (
            observed.running() or any(s.ready for s in observed.sandboxes)
        ):
            actions.kill_pod = True
            actions.kill_reason = (
                "pod sandbox changed, it will be killed and re-created"
                if sandbox is not None and sandbox.ready
                else "pod sandbox is not ready, it will be re-created"
            )
        actions.create_sandbox = True
        actions.sandbox_attempt = sandbox.attempt + 1 if sandbox else 0
        # in a new sandbox every container starts again (init containers first)
        fresh = [Slot(s.spec, s.init, None, s.latest or s.previous) for s in slots(pod, observed)]
        first = [s for s in fresh if s.init][:1] or [s for s in fresh if not s.init]
        for slot in first:
            _start(pod, observed, slot, now, actions)
        return actions
    all_slots = slots(pod, observed)
    for slot in (s for s in all_slots if s.init):
        if slot.succeeded:
            continue
        latest = slot.latest
        if latest is None or slot.restart is not None or not (latest.running or latest.exited):
            _start(pod, observed, slot, now, actions)
        break
    else:
        for slot in (s for s in all_slots if not s.init):
            latest = slot.latest
            if latest is not None and latest.running:
                if latest.spec_hash and latest.spec_hash != container_hash(slot.spec):
                    reason = f"Container {slot.spec.name} definition changed, will be restarted"
                    actions.kill.append(KillContainer(latest.id, slot.spec.name, reason, grace))
                    continue
                verdict = probe_view(slot.spec, latest)
                if verdict.failed:
                    reason = f"Container {slot.spec.name} failed {verdict.failed} probe"
                    actions.kill.append(KillContainer(latest.id, slot.spec.name, reason, grace))
                continue
            changed = (
                latest is not None
                and latest.exited
                and latest.spec_hash
                and latest.spec_hash != container_hash(slot.spec)
            )
            if latest is None or slot.restart is not None or changed or not latest.exited:
                _start(pod, observed, slot, now, actions)
    if observed is not None:
        known = {c.name for c in pod.spec.all_containers()}
        for container in observed.running():
            if container.name not in known:
                reason = f"Container {container.name} is not in the pod's spec"
                actions.kill.append(KillContainer(container.id, container.name, reason, grace))
        _garbage(pod, observed, actions)
    return actions
