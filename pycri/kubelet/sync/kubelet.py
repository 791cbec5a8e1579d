"""The Kubelet: keeps the pods of a manifest directory running on one CRI endpoint.

    with CRIClient("unix:///run/containerd/containerd.sock") as client:
        kubelet = Kubelet(client, manifest_dir="/etc/pods", root_dir="/var/lib/pycri-kubelet")
        kubelet.apply(pod_document)          # writes the manifest
        kubelet.sync_once()                  # relist, then sync every pod
        print(kubelet.pod_status("web").phase)

Desired state is the manifest directory; actual state is the runtime,
found again through labels, so a new Kubelet (or a restarted daemon)
adopts the pods already there. Each pod is synced by one worker thread
at a time; :meth:`run_forever` relists every ``sync_period`` seconds and
hands each idle pod to a worker, so one slow pod (a long grace period)
does not hold up the others.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.kubelet.model import labels as L
from pycri.kubelet.model.manifest import (
    DEFAULT_NAMESPACE,
    ManifestObject,
    load_documents,
    parse_documents,
)
from pycri.kubelet.model.spec import Pod
from pycri.kubelet.sync.clock import Clock, SystemClock
from pycri.kubelet.sync.criconfig import PodContext
from pycri.kubelet.sync.images import ImageManager
from pycri.kubelet.sync.manifestdir import ApplyResult, DesiredState, ManifestDir
from pycri.kubelet.sync.nodeinfo import default_node_name, host_ip, valid_node_name
from pycri.kubelet.sync.observed import ObservedPod, Relister
from pycri.kubelet.sync.paths import KubeletPaths
from pycri.kubelet.sync.podstate import PodState, read_deletion, write_deletion
from pycri.kubelet.sync.podsync import PodSyncer, SyncContext
from pycri.kubelet.sync.probes import ProbeManager
from pycri.kubelet.sync.status import (
    ContainerState,
    ContainerStatus,
    PodStatus,
    compute_status,
    terminated_reason,
)
from pycri.kubelet.sync.volumes import remove_pod_dirs

__all__ = ["Kubelet", "PodInfo", "SyncReport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PodInfo:
    """A pod as the commands show it: desired, observed, and the status computed from both."""

    name: str
    namespace: str
    uid: str
    status: PodStatus
    pod: Pod | None = None
    observed: ObservedPod | None = None
    state: PodState | None = None

    @property
    def terminating(self) -> bool:
        return self.pod is None


@dataclass
class SyncReport:
    desired: int = 0
    observed: int = 0
    synced: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Kubelet:
    """Runs the pods of ``manifest_dir`` through ``client``; see the module docs."""

    def __init__(
        self,
        client: CRIClient,
        *,
        manifest_dir: str | os.PathLike[str],
        root_dir: str | os.PathLike[str],
        log_root: str | os.PathLike[str] | None = None,
        node_name: str | None = None,
        clock: Clock | None = None,
        workers: int = 16,
        sync_period: float = 1.0,
        node_ip: str | None = None,
        resolv_conf: str | os.PathLike[str] = "/etc/resolv.conf",
        runtime_handler: str = "",
    ) -> None:
        self.client = client
        #: the handler of pods without spec.runtimeClassName (the node's runtime)
        self.runtime_handler = runtime_handler
        self._handler_overrides: dict[tuple[str, str], str] = {}
        self.node = node_name or default_node_name()
        if not valid_node_name(self.node):
            raise ValueError(
                f"node name {self.node!r} must be a lower-case DNS label (it is a label value)"
            )
        root = Path(root_dir)
        self.paths = KubeletPaths(root, Path(log_root) if log_root else root / "logs")
        self.manifests = ManifestDir(Path(manifest_dir), self.node)
        self.clock: Clock = clock or SystemClock()
        self.sync_period = sync_period
        self.relister = Relister(client, self.node)
        self.probes = ProbeManager(client)
        self.images = ImageManager(client)
        self.context = PodContext(
            self.node,
            self.paths,
            host_ip=node_ip if node_ip is not None else host_ip(),
            resolv_conf=Path(resolv_conf),
        )
        self.syncer = PodSyncer(
            SyncContext(client, self.clock, self.context, self.images, self.probes)
        )
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pycri-kubelet-pod")
        self._busy: dict[str, Future[None]] = {}
        self._states: dict[str, PodState] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- the sync loop -------------------------------------------------------------------

    def sync_once(self) -> SyncReport:
        """Relist, then sync every pod (and remove unwanted ones); wait until all are done."""
        report, futures = self._dispatch()
        for uid, future in futures.items():
            try:
                future.result()
            except Exception as err:  # one pod's failure must not hide the others'
                report.errors[uid] = str(err)
        return report

    def run_forever(self, stop: threading.Event) -> None:
        """Relist every ``sync_period`` seconds until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                self._dispatch()
            except CRIError as err:
                log.error("relist failed: %s", err)
            except Exception:
                log.exception("sync loop iteration failed")
            stop.wait(max(0.0, self.sync_period - (time.monotonic() - started)))
        with self._lock:
            pending = list(self._busy.values())
        for future in pending:
            future.exception()  # let in-flight syncs finish (their errors are logged)

    def move(self, name: str, namespace: str, runtime_handler: str) -> None:
        """Run this pod on another runtime handler from the next sync, manifest unchanged.

        The pod is killed and re-created there (a new sandbox attempt), the way
        a node drained from dockershim comes back on containerd, one pod at a time.
        """
        with self._lock:
            self._handler_overrides[(namespace, name)] = runtime_handler

    def _with_handlers(self, desired: DesiredState) -> DesiredState:
        with self._lock:
            overrides = dict(self._handler_overrides)
        for uid, pod in desired.pods.items():
            handler = overrides.get((pod.namespace, pod.name)) or (
                pod.spec.runtime_class_name or self.runtime_handler
            )
            if handler != pod.spec.runtime_class_name:
                spec = dataclasses.replace(pod.spec, runtime_class_name=handler)
                desired.pods[uid] = dataclasses.replace(pod, spec=spec)
        return desired

    def _dispatch(self) -> tuple[SyncReport, dict[str, Future[None]]]:
        desired = self._with_handlers(self.manifests.load())
        observed = self.relister.relist()
        report = SyncReport(len(desired.pods), len(observed), warnings=list(desired.warnings))
        protected = self._protected(desired, observed)
        futures: dict[str, Future[None]] = {}
        self.probes.retain(c.id for pod in observed.values() for c in pod.running())
        for uid in [*desired.pods, *(u for u in observed if u not in desired.pods)]:
            with self._lock:
                busy = self._busy.get(uid)
                if busy is not None and not busy.done():
                    continue
            pod, seen = desired.pods.get(uid), observed.get(uid)
            if pod is None:
                if uid in protected or seen is None:
                    continue
                job: Callable[[], None] = functools.partial(self._terminate, seen)
                report.terminated.append(uid)
            else:
                job = functools.partial(self._sync_pod, pod, seen)
                report.synced.append(uid)
            future = self._pool.submit(self._guarded, uid, job)
            with self._lock:
                self._busy[uid] = future
            futures[uid] = future
        with self._lock:
            for uid in [u for u, f in self._busy.items() if f.done()]:
                del self._busy[uid]
            busy_uids = set(self._busy)
        self._clean_orphan_dirs(desired, observed, busy_uids)
        return report, futures

    @staticmethod
    def _guarded(uid: str, job: Callable[[], None]) -> None:
        """Run one pod's job; log a failure (the daemon has no one else to tell)."""
        try:
            job()
        except Exception:
            log.exception("sync of pod %s failed", uid)
            raise

    def _protected(self, desired: DesiredState, observed: Mapping[str, ObservedPod]) -> set[str]:
        """Pods from a manifest that is broken right now: left alone, not killed."""
        protected = set()
        for uid, pod in observed.items():
            source = next((s.annotations.get(L.SOURCE, "") for s in pod.sandboxes), "")
            if source and source in desired.broken:
                protected.add(uid)
        return protected

    def _state(self, uid: str, name: str, namespace: str) -> PodState:
        with self._lock:
            state = self._states.get(uid)
            if state is None:
                state = PodState.read(self.paths.state_file(uid)) or PodState(name, namespace, uid)
                self._states[uid] = state
            return state

    def _persist(self, state: PodState) -> None:
        data = state.to_json()
        if self._written.get(state.uid) == data:
            return
        path = self.paths.state_file(state.uid)
        if not path.parent.exists():
            return  # the pod's directory is gone: it was just deleted
        state.write(path)
        self._written[state.uid] = data

    def _forget(self, uid: str) -> None:
        with self._lock:
            self._states.pop(uid, None)
            self._written.pop(uid, None)
        self.images.backoff.forget_pod(uid)

    def _sync_pod(self, pod: Pod, observed: ObservedPod | None) -> None:
        requested, grace = read_deletion(self.paths.pod_dir(pod.uid))
        if requested:
            self._terminate(observed, pod, grace)
            return
        state = self._state(pod.uid, pod.name, pod.namespace)
        self.paths.pod_dir(pod.uid).mkdir(parents=True, exist_ok=True)
        state.log_dir = str(self.paths.log_dir(pod.namespace, pod.name, pod.uid))
        self.syncer.sync(pod, observed, state)
        self._persist(state)

    def _terminate(
        self,
        observed: ObservedPod | None,
        pod: Pod | None = None,
        grace_period: int | None = None,
    ) -> None:
        uid = pod.uid if pod else observed.uid if observed else ""
        if grace_period is None:
            _, grace_period = read_deletion(self.paths.pod_dir(uid))
        if grace_period is None and pod is not None:
            grace_period = pod.spec.termination_grace_period_seconds
        if observed is not None:
            self.syncer.kill_pod(observed, grace_period, remove=True)
        name = pod.name if pod else observed.name if observed else ""
        namespace = pod.namespace if pod else observed.namespace if observed else ""
        log_dir = self.paths.log_dir(namespace, name, uid) if name and namespace else None
        remove_pod_dirs(self.paths, uid, log_dir)
        self._forget(uid)

    def _clean_orphan_dirs(
        self, desired: DesiredState, observed: Mapping[str, ObservedPod], busy: set[str]
    ) -> None:
        """Pod directories of pods neither wanted nor in the runtime (a crash mid-delete)."""
        try:
            uids = [p.name for p in self.paths.pods.iterdir() if p.is_dir()]
        except FileNotFoundError:
            return
        for uid in uids:
            if uid in desired.pods or uid in observed or uid in busy:
                continue
            state = PodState.read(self.paths.state_file(uid))
            log_dir = Path(state.log_dir) if state and state.log_dir else None
            remove_pod_dirs(self.paths, uid, log_dir)
            self._forget(uid)

    # -- desired state ---------------------------------------------------------------------

    def parse(self, source: str | Mapping[str, Any] | Iterable[Any]) -> list[ManifestObject]:
        """Validate manifests (text, one document, or documents); ManifestError if invalid."""
        if isinstance(source, str):
            documents = load_documents(source)
        elif isinstance(source, Mapping):
            documents = [source]
        else:
            documents = list(source)
        return list(parse_documents(documents, node=self.node).objects)

    def apply(
        self, source: str | Mapping[str, Any] | Iterable[Any]
    ) -> list[tuple[ManifestObject, ApplyResult]]:
        """Write manifests into the manifest directory (the next sync runs them)."""
        return [(obj, self.manifests.put(obj)) for obj in self.parse(source)]

    def scale(self, name: str, replicas: int, namespace: str = DEFAULT_NAMESPACE) -> ApplyResult:
        """Change a Deployment's replicas (KeyError when there is no such Deployment)."""
        if replicas < 0:
            raise ValueError("replicas must not be negative")
        return self.manifests.set_replicas(namespace, name, replicas)

    def delete(
        self,
        name: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        kind: str = "Pod",
        grace_period: int | None = None,
    ) -> bool:
        """Delete a Pod or a Deployment now: manifest, containers (with grace), sandbox, dirs.

        A pod that is a Deployment's replica is killed and comes back at the next
        sync, as with a ReplicaSet. False when nothing of that name exists.
        """
        targets = self._deletion_targets(name, namespace, kind)
        found = self.manifests.remove(kind, namespace, name)
        if not targets and not found:
            return False
        observed = self.relister.relist()
        for uid, pod in targets.items():
            grace = grace_period
            if grace is None and pod is not None:
                grace = pod.spec.termination_grace_period_seconds
            with self._lock:
                busy = self._busy.get(uid)
            if busy is not None:
                busy.exception()  # wait for a sync in flight: it must not recreate what we kill
            self._terminate(observed.get(uid), pod, grace)
        return True

    def request_deletion(
        self,
        name: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        kind: str = "Pod",
        grace_period: int | None = None,
    ) -> list[str]:
        """Ask the daemon that holds the lock to delete: the uids it will remove."""
        targets = self._deletion_targets(name, namespace, kind)
        now = self.clock.now()
        for uid in targets:
            write_deletion(self.paths.pod_dir(uid), grace_period, now)
        found = self.manifests.remove(kind, namespace, name)
        return list(targets) if targets or found else []

    def _deletion_targets(self, name: str, namespace: str, kind: str) -> dict[str, Pod | None]:
        desired = self.manifests.load()
        targets: dict[str, Pod | None] = {}
        if kind == "Deployment":
            for replica in desired.pods.values():
                if replica.owner == name and replica.namespace == namespace:
                    targets[replica.uid] = replica
            return targets
        pod = desired.by_name(namespace, name)
        if pod is not None:
            targets[pod.uid] = pod
        for uid, seen in self.relister.relist().items():
            if seen.name == name and seen.namespace == namespace:
                targets.setdefault(uid, None)
        return targets

    # -- status ------------------------------------------------------------------------------

    def pods(self, namespace: str | None = None) -> list[PodInfo]:
        """Every pod (desired or still in the runtime), with its computed status."""
        desired = self.manifests.load()
        observed = self.relister.relist()
        infos = []
        now = self.clock.now()
        for uid in [*desired.pods, *(u for u in observed if u not in desired.pods)]:
            pod, seen = desired.pods.get(uid), observed.get(uid)
            name = pod.name if pod else seen.name if seen else ""
            ns = pod.namespace if pod else seen.namespace if seen else ""
            if namespace is not None and ns != namespace:
                continue
            with self._lock:
                state = self._states.get(uid)
            state = state or PodState.read(self.paths.state_file(uid))
            saved = state.probes if state else {}

            def results(cid: str, saved: Mapping[str, Any] = saved) -> Mapping[str, bool | None]:
                return self.probes.results(cid) or saved.get(cid, {})

            if pod is not None:
                status = compute_status(
                    pod,
                    seen,
                    now=now,
                    probe_results=results,
                    waiting=state.waiting if state else {},
                    host_ip=self.context.host_ip,
                )
            else:
                assert seen is not None
                status = _terminating_status(seen)
            infos.append(PodInfo(name, ns, uid, status, pod, seen, state))
        infos.sort(key=lambda i: (i.namespace, i.name))
        return infos

    def pod(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> PodInfo | None:
        return next((p for p in self.pods(namespace) if p.name == name), None)

    def pod_status(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> PodStatus:
        """The pod's status (KeyError when there is no such pod)."""
        info = self.pod(name, namespace)
        if info is None:
            raise KeyError(f"{namespace}/{name}")
        return info.status


def _terminating_status(observed: ObservedPod) -> PodStatus:
    """A pod the manifests no longer ask for: shown as Terminating until it is gone."""
    statuses = []
    for name in dict.fromkeys(c.name for c in observed.containers):
        latest = observed.named(name)[0]
        if latest.running:
            state = ContainerState("running", started_at=latest.started_at / 1e9)
        elif latest.exited:
            state = ContainerState(
                "terminated",
                reason=terminated_reason(latest),
                exit_code=latest.exit_code,
                finished_at=latest.finished_at / 1e9,
            )
        else:
            state = ContainerState("waiting", "ContainerCreating")
        statuses.append(
            ContainerStatus(name, state, restart_count=latest.restart_count, container_id=latest.id)
        )
    running = any(c.running for c in observed.containers)
    sandbox = observed.sandbox
    return PodStatus(
        phase="Running" if running else "Succeeded",
        pod_ip=sandbox.ip if sandbox else "",
        start_time=min((s.created_at for s in observed.sandboxes), default=0) / 1e9,
        container_statuses=tuple(statuses),
        reason="Terminating",
    )
