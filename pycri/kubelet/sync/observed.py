"""The relist: what the runtime holds for this kubelet, grouped by pod uid.

One ``ListPodSandbox`` and one ``ListContainers``, both filtered on this
node's label, are the whole relist in steady state. The details a list
entry lacks (start and finish times, exit codes, the pod IP) are fetched
once per container state and kept: they never change for a given state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.kubelet.model import labels as L

__all__ = ["ObservedContainer", "ObservedPod", "ObservedSandbox", "Relister"]

_PARALLEL_FETCHES = 8


@dataclass(frozen=True)
class ObservedContainer:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    state: int
    created_at: int
    image: str = ""
    image_ref: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    log_path: str = ""

    @property
    def running(self) -> bool:
        return self.state == cri.CONTAINER_RUNNING

    @property
    def exited(self) -> bool:
        return self.state in (cri.CONTAINER_EXITED, cri.CONTAINER_UNKNOWN)

    @property
    def spec_hash(self) -> str:
        return self.annotations.get(L.CONTAINER_HASH, "")

    @property
    def is_init(self) -> bool:
        return self.annotations.get(L.INIT) == "true"

    @property
    def backoff(self) -> int:
        """Crash-loop back-off (seconds) that applies once this container has exited."""
        try:
            return int(self.annotations.get(L.BACKOFF, "0"))
        except ValueError:
            return 0

    @property
    def restart_count(self) -> int:
        try:
            return int(self.annotations.get(L.RESTART_COUNT, self.attempt))
        except ValueError:
            return self.attempt

    @property
    def grace_period(self) -> int | None:
        try:
            return int(self.annotations[L.GRACE_PERIOD])
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class ObservedSandbox:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    state: int
    created_at: int
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""

    @property
    def ready(self) -> bool:
        return self.state == cri.SANDBOX_READY


@dataclass
class ObservedPod:
    """Every sandbox and container of one pod uid, newest first."""

    uid: str
    name: str
    namespace: str
    sandboxes: list[ObservedSandbox] = field(default_factory=list)
    containers: list[ObservedContainer] = field(default_factory=list)

    @property
    def sandbox(self) -> ObservedSandbox | None:
        """The newest sandbox: the one containers are created in."""
        return self.sandboxes[0] if self.sandboxes else None

    def named(self, name: str, sandbox_id: str | None = None) -> list[ObservedContainer]:
        """Containers with this name (in one sandbox, if given), newest first."""
        return [
            c
            for c in self.containers
            if c.name == name and (sandbox_id is None or c.sandbox_id == sandbox_id)
        ]

    def latest(self, name: str, sandbox_id: str | None = None) -> ObservedContainer | None:
        found = self.named(name, sandbox_id)
        return found[0] if found else None

    def running(self) -> list[ObservedContainer]:
        return [c for c in self.containers if c.running]


class Relister:
    """Lists this node's pods and containers; remembers the details that do not change."""

    def __init__(self, client: CRIClient, node: str) -> None:
        self.client = client
        self.node = node
        self._details: dict[tuple[str, int], ObservedContainer] = {}
        self._ips: dict[str, str] = {}
        self._lock = threading.Lock()

    def relist(self) -> dict[str, ObservedPod]:
        """This node's pods by uid (one relist at a time: the caches are shared)."""
        with self._lock:
            return self._relist()

    def _relist(self) -> dict[str, ObservedPod]:
        selector = {L.NODE: self.node}
        sandboxes = self.client.list_pod_sandbox(
            cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
        ).items
        containers = self.client.list_containers(
            cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector=selector))
        ).containers
        pods: dict[str, ObservedPod] = {}
        for sandbox in sandboxes:
            observed = _sandbox(sandbox)
            pod = pods.setdefault(
                observed.uid, ObservedPod(observed.uid, observed.name, observed.namespace)
            )
            pod.sandboxes.append(observed)
        listed = [_container(c) for c in containers]
        for container in self._with_details(listed):
            uid = container.labels.get(L.POD_UID, "")
            if uid not in pods:  # a container whose sandbox is gone: still ours to clean up
                pods[uid] = ObservedPod(
                    uid,
                    container.labels.get(L.POD_NAME, ""),
                    container.labels.get(L.POD_NAMESPACE, ""),
                )
            pods[uid].containers.append(container)
        self._fill_ips(pods.values())
        for pod in pods.values():
            pod.sandboxes.sort(key=lambda s: (s.created_at, s.attempt), reverse=True)
            pod.containers.sort(key=lambda c: (c.created_at, c.attempt), reverse=True)
        return pods

    def forget(self) -> None:
        with self._lock:
            self._details.clear()
            self._ips.clear()

    def _with_details(self, listed: list[ObservedContainer]) -> list[ObservedContainer]:
        missing = [c for c in listed if (c.id, c.state) not in self._details]
        if missing:
            with ThreadPoolExecutor(min(_PARALLEL_FETCHES, len(missing))) as pool:
                for container, status in zip(
                    missing, pool.map(self._container_status, missing), strict=True
                ):
                    if status is not None:
                        self._details[(container.id, container.state)] = _detailed(
                            container, status
                        )
        keep = {(c.id, c.state) for c in listed}
        for key in [k for k in self._details if k not in keep]:
            del self._details[key]
        return [self._details.get((c.id, c.state), c) for c in listed]

    def _container_status(self, container: ObservedContainer) -> cri.ContainerStatus | None:
        try:
            return self.client.container_status(
                cri.ContainerStatusRequest(container_id=container.id)
            ).status
        except CRIError:
            return None  # removed since the list: the next relist will not show it

    def _fill_ips(self, pods: Iterable[ObservedPod]) -> None:
        live = {s.id for pod in pods for s in pod.sandboxes}
        for sandbox_id in [i for i in self._ips if i not in live]:
            del self._ips[sandbox_id]
        for pod in pods:
            for index, sandbox in enumerate(pod.sandboxes):
                if not sandbox.ready:
                    continue
                if sandbox.id not in self._ips:
                    self._ips[sandbox.id] = self._sandbox_ip(sandbox.id)
                pod.sandboxes[index] = replace(sandbox, ip=self._ips[sandbox.id])

    def _sandbox_ip(self, sandbox_id: str) -> str:
        try:
            status = self.client.pod_sandbox_status(
                cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)
            ).status
        except CRIError:
            return ""
        return status.network.ip


def _sandbox(sandbox: cri.PodSandbox) -> ObservedSandbox:
    meta = sandbox.metadata
    return ObservedSandbox(
        id=sandbox.id,
        name=sandbox.labels.get(L.POD_NAME, meta.name),
        namespace=sandbox.labels.get(L.POD_NAMESPACE, meta.namespace),
        uid=sandbox.labels.get(L.POD_UID, meta.uid),
        attempt=meta.attempt,
        state=sandbox.state,
        created_at=sandbox.created_at,
        labels=dict(sandbox.labels),
        annotations=dict(sandbox.annotations),
    )


def _container(container: cri.Container) -> ObservedContainer:
    return ObservedContainer(
        id=container.id,
        sandbox_id=container.pod_sandbox_id,
        name=container.labels.get(L.CONTAINER_NAME, container.metadata.name),
        attempt=container.metadata.attempt,
        state=container.state,
        created_at=container.created_at,
        image=container.image.image,
        image_ref=container.image_ref,
        labels=dict(container.labels),
        annotations=dict(container.annotations),
    )


def _detailed(container: ObservedContainer, status: cri.ContainerStatus) -> ObservedContainer:
    return replace(
        container,
        state=container.state,
        started_at=status.started_at,
        finished_at=status.finished_at,
        exit_code=status.exit_code,
        reason=status.reason,
        message=status.message,
        log_path=status.log_path,
        image_ref=status.image_ref or container.image_ref,
    )
