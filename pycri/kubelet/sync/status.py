"""Pod status from the runtime: phase, conditions, container states, restart counts.

Everything here is a pure function of the desired pod, the relist, the
probe results and the clock, so the daemon and a one-shot command compute
the same status. The rules are the kubelet's (``getPhase``,
``convertToAPIContainerStatuses``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from pycri.api import api_pb2 as cri
from pycri.kubelet.model.spec import Container, Pod
from pycri.kubelet.sync.backoff import Restart, next_restart, should_restart
from pycri.kubelet.sync.observed import ObservedContainer, ObservedPod
from pycri.kubelet.sync.probes import view_of

__all__ = [
    "Condition",
    "ContainerState",
    "ContainerStatus",
    "PodStatus",
    "Slot",
    "compute_status",
    "slots",
    "terminated_reason",
]

ProbeResults = Callable[[str], Mapping[str, bool | None]]
Phase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]


@dataclass(frozen=True)
class ContainerState:
    state: Literal["waiting", "running", "terminated"]
    reason: str = ""
    message: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    container_id: str = ""


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    state: ContainerState
    last_state: ContainerState | None = None
    ready: bool = False
    started: bool | None = None
    restart_count: int = 0
    image: str = ""
    image_id: str = ""
    container_id: str = ""
    init: bool = False


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str = ""
    message: str = ""
    last_transition: float = 0.0


@dataclass(frozen=True)
class PodStatus:
    phase: Phase
    conditions: tuple[Condition, ...] = ()
    pod_ip: str = ""
    host_ip: str = ""
    start_time: float = 0.0
    init_container_statuses: tuple[ContainerStatus, ...] = ()
    container_statuses: tuple[ContainerStatus, ...] = ()
    reason: str = ""
    message: str = ""

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status for c in self.conditions)

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


@dataclass(frozen=True)
class Slot:
    """One container of the spec and the runtime's instances of it."""

    spec: Container
    init: bool
    #: the newest instance in the pod's current sandbox
    latest: ObservedContainer | None
    #: the instance before ``latest`` (or the newest in an older sandbox)
    previous: ObservedContainer | None
    #: set when ``latest`` exited and the restart policy restarts it
    restart: Restart | None = None

    @property
    def succeeded(self) -> bool:
        return self.latest is not None and self.latest.exited and self.latest.exit_code == 0

    @property
    def failed(self) -> bool:
        return self.latest is not None and self.latest.exited and self.latest.exit_code != 0

    @property
    def restart_count(self) -> int:
        newest = self.latest or self.previous
        return newest.restart_count if newest else 0


@dataclass
class _Counts:
    running: int = 0
    waiting: int = 0
    stopped: int = 0
    succeeded: int = 0
    unready: list[str] = field(default_factory=list)


def slots(pod: Pod, observed: ObservedPod | None) -> list[Slot]:
    """A slot per init container, then per app container, in spec order."""
    out = []
    sandbox = observed.sandbox if observed else None
    for init, group in ((True, pod.spec.init_containers), (False, pod.spec.containers)):
        for spec in group:
            latest = previous = None
            if observed is not None:
                named = observed.named(spec.name)
                current = [c for c in named if sandbox is not None and c.sandbox_id == sandbox.id]
                latest = current[0] if current else None
                older = [c for c in named if c is not latest]
                previous = older[0] if older else None
            restart = None
            if latest is not None and latest.exited:
                if init:
                    wants = latest.exit_code != 0 and pod.spec.restart_policy != "Never"
                else:
                    wants = should_restart(pod.spec.restart_policy, latest.exit_code)
                restart = next_restart(latest) if wants else None
            out.append(Slot(spec, init, latest, previous, restart))
    return out


def terminated_reason(container: ObservedContainer) -> str:
    if container.reason:
        return container.reason
    return "Completed" if container.exit_code == 0 else "Error"


def _terminated(container: ObservedContainer) -> ContainerState:
    return ContainerState(
        "terminated",
        reason=terminated_reason(container),
        message=container.message,
        started_at=container.started_at / 1e9,
        finished_at=container.finished_at / 1e9,
        exit_code=container.exit_code,
        container_id=container.id,
    )


def _container_status(
    pod: Pod,
    slot: Slot,
    *,
    now: float,
    initializing: bool,
    probe_results: ProbeResults,
    waiting: Mapping[str, tuple[str, str]],
) -> ContainerStatus:
    latest, previous, name = slot.latest, slot.previous, slot.spec.name
    last = _terminated(previous) if previous is not None and previous.exited else None
    base = ContainerStatus(
        name=name,
        state=ContainerState("waiting", "ContainerCreating"),
        last_state=last,
        restart_count=slot.restart_count,
        image=slot.spec.image,
        init=slot.init,
    )
    if latest is not None:
        base = replace(base, image_id=latest.image_ref, container_id=latest.id)
    override = waiting.get(name)
    stopped = latest is None or latest.state not in _LIVE_STATES
    if stopped and override and (latest is None or slot.restart is not None):
        state = ContainerState("waiting", override[0], override[1])
        return replace(base, state=state, last_state=_terminated(latest) if latest else last)
    if latest is None:
        reason = "PodInitializing" if (initializing or slot.init) else "ContainerCreating"
        return replace(base, state=ContainerState("waiting", reason))
    if latest.running:
        view = view_of(slot.spec, probe_results(latest.id))
        state = ContainerState(
            "running", started_at=latest.started_at / 1e9, container_id=latest.id
        )
        ready = view.ready and not slot.init
        return replace(base, state=state, ready=ready, started=view.started)
    if not latest.exited:  # created, not started yet
        return replace(base, state=ContainerState("waiting", "ContainerCreating"), started=False)
    if slot.restart is not None and slot.restart.not_before > now:
        message = (
            f"back-off {slot.restart.delay}s restarting failed container={name} "
            f"pod={pod.name}_{pod.namespace}({pod.uid})"
        )
        state = ContainerState("waiting", "CrashLoopBackOff", message)
        return replace(base, state=state, last_state=_terminated(latest), started=False)
    return replace(base, state=_terminated(latest), started=False)


_LIVE_STATES = (cri.CONTAINER_CREATED, cri.CONTAINER_RUNNING)


def _phase(pod: Pod, init: list[Slot], app: list[ContainerStatus]) -> Phase:
    policy = pod.spec.restart_policy
    if policy == "Never" and any(s.failed for s in init):
        return "Failed"
    if not all(s.succeeded for s in init):
        return "Pending"
    counts = _Counts()
    for status in app:
        if status.state.state == "running":
            counts.running += 1
        elif status.state.state == "terminated":
            counts.stopped += 1
            counts.succeeded += status.state.exit_code == 0
        elif status.last_state is not None:  # waiting to restart: it has run
            counts.stopped += 1
        else:
            counts.waiting += 1
    if counts.waiting:
        return "Pending"
    if counts.running:
        return "Running"
    if counts.stopped:
        if policy == "Always":
            return "Running"
        if counts.stopped == counts.succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def compute_status(
    pod: Pod,
    observed: ObservedPod | None,
    *,
    now: float,
    probe_results: ProbeResults = lambda _cid: {},
    waiting: Mapping[str, tuple[str, str]] | None = None,
    host_ip: str = "",
) -> PodStatus:
    """The pod's status as the kubelet would report it."""
    all_slots = slots(pod, observed)
    init_slots = [s for s in all_slots if s.init]
    app_slots = [s for s in all_slots if not s.init]
    initializing = not all(s.succeeded for s in init_slots)

    def status_of(slot: Slot) -> ContainerStatus:
        return _container_status(
            pod,
            slot,
            now=now,
            initializing=initializing,
            probe_results=probe_results,
            waiting=waiting or {},
        )

    init_statuses = [status_of(s) for s in init_slots]
    app_statuses = [status_of(s) for s in app_slots]
    sandbox = observed.sandbox if observed else None
    phase = _phase(pod, init_slots, app_statuses)
    terminal = phase in ("Succeeded", "Failed")
    unready = [s.name for s in app_statuses if not s.ready]
    ready = not unready and not initializing and sandbox is not None and sandbox.ready
    created = min((s.created_at for s in observed.sandboxes), default=0) if observed else 0
    sandbox_time = sandbox.created_at / 1e9 if sandbox else 0.0
    started = [s.state.started_at for s in app_statuses if s.state.state == "running"]
    finished = [
        s.latest.finished_at / 1e9 for s in all_slots if s.latest is not None and s.latest.exited
    ]
    init_done_at = max((s.latest.finished_at / 1e9 for s in init_slots if s.latest), default=0.0)
    if ready:
        ready_reason, ready_message, ready_time = "", "", max(started, default=sandbox_time)
    else:
        ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
        ready_message = "" if terminal else f"containers with unready status: [{' '.join(unready)}]"
        ready_time = max(finished, default=sandbox_time)
    pending_init = [s.spec.name for s in init_slots if not s.succeeded]
    conditions = (
        Condition(
            "PodReadyToStartContainers",
            bool(sandbox and sandbox.ready),
            last_transition=sandbox_time,
        ),
        Condition(
            "Initialized",
            not initializing,
            "" if not initializing else "ContainersNotInitialized",
            ""
            if not initializing
            else f"containers with incomplete status: [{' '.join(pending_init)}]",
            init_done_at or sandbox_time,
        ),
        Condition("Ready", ready, ready_reason, ready_message, ready_time),
        Condition("ContainersReady", ready, ready_reason, ready_message, ready_time),
        Condition("PodScheduled", True, last_transition=created / 1e9),
    )
    return PodStatus(
        phase=phase,
        conditions=conditions,
        pod_ip=sandbox.ip if sandbox and sandbox.ready else "",
        host_ip=host_ip,
        start_time=created / 1e9,
        init_container_statuses=tuple(init_statuses),
        container_statuses=tuple(app_statuses),
    )
