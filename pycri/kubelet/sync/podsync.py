"""One pod's sync: compute its status and actions, carry them out through the CRI, probe.

Also the kill path (deletion, orphans, finished pods): every running
container stopped in parallel with the grace period, then the sandbox
stopped and removed, then the pod's directories.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.kubelet.model.spec import Container, Pod
from pycri.kubelet.sync.actions import PodActions, StartContainer, compute_actions
from pycri.kubelet.sync.backoff import ImageBackoff
from pycri.kubelet.sync.clock import Clock
from pycri.kubelet.sync.criconfig import PodContext, container_config, sandbox_config
from pycri.kubelet.sync.images import ImageManager
from pycri.kubelet.sync.observed import ObservedContainer, ObservedPod
from pycri.kubelet.sync.podstate import PodState
from pycri.kubelet.sync.probes import ProbeManager
from pycri.kubelet.sync.status import PodStatus, compute_status
from pycri.kubelet.sync.volumes import VolumeError, prepare_volumes

__all__ = ["PodSyncer", "SyncContext"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncContext:
    client: CRIClient
    clock: Clock
    ctx: PodContext
    images: ImageManager
    probes: ProbeManager


class PodSyncer:
    """Carries out :func:`compute_actions` for one pod at a time (any number of threads)."""

    def __init__(self, sync: SyncContext) -> None:
        self.s = sync
        self.client = sync.client
        self.start_backoff = ImageBackoff()

    # -- the sync ---------------------------------------------------------------------

    def status(self, pod: Pod, observed: ObservedPod | None, state: PodState) -> PodStatus:
        return compute_status(
            pod,
            observed,
            now=self.s.clock.now(),
            probe_results=self.s.probes.results,
            waiting=state.waiting,
            host_ip=self.s.ctx.host_ip,
        )

    def sync(self, pod: Pod, observed: ObservedPod | None, state: PodState) -> PodActions:
        now = self.s.clock.now()
        paths = self.s.ctx.paths
        try:
            prepare_volumes(pod, paths)
        except VolumeError as err:
            state.record(now, "Warning", "FailedMount", str(err))
            for container in pod.spec.all_containers():
                state.waiting[container.name] = ("ContainerCreating", str(err))
            return PodActions()
        self._adopt_probe_results(pod, observed, state)
        status = self.status(pod, observed, state)
        actions = compute_actions(pod, observed, status, self.s.probes.view, now)
        self._execute(pod, observed, state, actions)
        if observed is not None and not actions.kill_pod:
            killed = {k.container_id for k in actions.kill}
            self._probe(pod, [c for c in observed.running() if c.id not in killed], state)
        return actions

    def _adopt_probe_results(self, pod: Pod, observed: ObservedPod | None, state: PodState) -> None:
        if observed is None:
            return
        specs = {c.name: c for c in pod.spec.containers}
        for container in observed.running():
            spec = specs.get(container.name)
            saved = state.probes.get(container.id)
            if spec is not None and saved:
                self.s.probes.load(container.id, saved, spec)

    def _execute(
        self, pod: Pod, observed: ObservedPod | None, state: PodState, actions: PodActions
    ) -> None:
        now = self.s.clock.now()
        if actions.kill_pod and observed is not None:
            state.record(now, "Normal", "Killing", f"Stopping pod: {actions.kill_reason}")
            self.kill_pod(observed, pod.spec.termination_grace_period_seconds, remove=False)
        if actions.kill:
            with ThreadPoolExecutor(len(actions.kill)) as pool:
                for kill in actions.kill:
                    state.record(now, "Normal", "Killing", kill.reason)
                    pool.submit(self._stop_container, kill.container_id, kill.grace_period)
        sandbox_id = observed.sandbox.id if observed and observed.sandbox else ""
        pod_ip = observed.sandbox.ip if observed and observed.sandbox else ""
        config = sandbox_config(pod, actions.sandbox_attempt, self.s.ctx)
        if actions.create_sandbox:
            created = self._run_sandbox(pod, config, state)
            if created is None:
                return
            sandbox_id, pod_ip = created
        elif observed is not None and observed.sandbox is not None:
            config = sandbox_config(pod, observed.sandbox.attempt, self.s.ctx)
        for start in actions.start:
            self._start(pod, sandbox_id, config, pod_ip, start, state)
        for name, _left in actions.backing_off:
            message = (
                f"Back-off restarting failed container {name} in pod {pod.full_name}({pod.uid})"
            )
            state.record(now, "Warning", "BackOff", message)
        self._remove(observed, actions.remove_containers, actions.remove_sandboxes)

    def _run_sandbox(
        self, pod: Pod, config: cri.PodSandboxConfig, state: PodState
    ) -> tuple[str, str] | None:
        now = self.s.clock.now()
        try:
            Path(config.log_directory).mkdir(parents=True, exist_ok=True)
            sandbox_id = self.client.run_pod_sandbox(
                cri.RunPodSandboxRequest(config=config, runtime_handler=pod.spec.runtime_class_name)
            ).pod_sandbox_id
        except (CRIError, OSError) as err:
            message = f"Failed to create pod sandbox: {err}"
            state.record(now, "Warning", "FailedCreatePodSandBox", message)
            for container in pod.spec.all_containers():
                state.waiting[container.name] = ("ContainerCreating", message)
            return None
        for container in pod.spec.all_containers():
            state.waiting.pop(container.name, None)
        state.log_dir = config.log_directory
        pod_ip = ""
        if not pod.spec.host_network and any(
            e.field_path == "status.podIP" for c in pod.spec.all_containers() for e in c.env
        ):
            try:
                pod_ip = self.client.pod_sandbox_status(
                    cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)
                ).status.network.ip
            except CRIError:
                pod_ip = ""
        return sandbox_id, pod_ip

    def _start(
        self,
        pod: Pod,
        sandbox_id: str,
        config: cri.PodSandboxConfig,
        pod_ip: str,
        start: StartContainer,
        state: PodState,
    ) -> None:
        now = self.s.clock.now()
        name = start.spec.name
        if self.start_backoff.remaining(pod.uid, name, now) > 0:
            return  # a start that failed recently: the waiting reason stays
        container_id = start.reuse_id
        if not container_id:
            image = self.s.images.ensure(pod.uid, start.spec, config, now)
            for kind, reason, message in image.events:
                state.record(now, kind, reason, message)
            if not image.ok:
                state.waiting[name] = (image.reason, image.message)
                return
            refusal = _non_root_refusal(pod, start.spec, image.user)
            if refusal:
                state.waiting[name] = ("CreateContainerConfigError", refusal)
                state.record(now, "Warning", "Failed", f"Error: {refusal}")
                return
            ctx = PodContext(
                self.s.ctx.node,
                self.s.ctx.paths,
                pod_ip=pod_ip,
                host_ip=self.s.ctx.host_ip,
                resolv_conf=self.s.ctx.resolv_conf,
            )
            container = container_config(
                pod,
                start.spec,
                init=start.init,
                attempt=start.attempt,
                backoff=start.backoff,
                ctx=ctx,
            )
            try:
                (Path(config.log_directory) / name).mkdir(parents=True, exist_ok=True)
                container_id = self.client.create_container(
                    cri.CreateContainerRequest(
                        pod_sandbox_id=sandbox_id, config=container, sandbox_config=config
                    )
                ).container_id
            except (CRIError, OSError) as err:
                state.waiting[name] = ("CreateContainerError", str(err))
                state.record(now, "Warning", "Failed", f"Error: {err}")
                return
            state.record(now, "Normal", "Created", f"Created container {name}")
        try:
            self.client.start_container(cri.StartContainerRequest(container_id=container_id))
        except CRIError as err:
            self.start_backoff.failed(pod.uid, name, now)
            state.waiting[name] = ("RunContainerError", str(err))
            state.record(now, "Warning", "Failed", f"Error: {err}")
            return
        self.start_backoff.succeeded(pod.uid, name)
        state.waiting.pop(name, None)
        state.record(now, "Normal", "Started", f"Started container {name}")

    def _remove(
        self,
        observed: ObservedPod | None,
        container_ids: Iterable[str],
        sandbox_ids: Iterable[str],
    ) -> None:
        by_id = {c.id: c for c in observed.containers} if observed else {}
        for container_id in container_ids:
            try:
                self.client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
            except CRIError as err:
                log.warning("removing container %s: %s", container_id[:13], err)
                continue
            gone = by_id.get(container_id)
            if gone is not None and gone.log_path:
                Path(gone.log_path).unlink(missing_ok=True)  # the kubelet removes it too
        for sandbox_id in sandbox_ids:
            self._remove_sandbox(sandbox_id)

    # -- probes -------------------------------------------------------------------------

    def _probe(self, pod: Pod, running: list[ObservedContainer], state: PodState) -> None:
        specs = {c.name: c for c in pod.spec.containers}
        now = self.s.clock.now()
        for container in running:
            spec = specs.get(container.name)
            if spec is None or container.is_init:
                continue
            for outcome in self.s.probes.run_due(spec, container, now):
                if not outcome.success:
                    kind = outcome.kind.capitalize()
                    state.record(
                        now, "Warning", "Unhealthy", f"{kind} probe failed: {outcome.output}"
                    )
        state.probes = self.s.probes.dump(c.id for c in running)

    # -- killing ------------------------------------------------------------------------

    def _stop_container(self, container_id: str, grace_period: int) -> None:
        try:
            self.client.stop_container(
                cri.StopContainerRequest(container_id=container_id, timeout=grace_period),
                timeout=grace_period + 30.0,
            )
        except CRIError as err:
            log.warning("stopping container %s: %s", container_id[:13], err)

    def _remove_sandbox(self, sandbox_id: str) -> None:
        try:
            self.client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
            self.client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))
        except CRIError as err:
            log.warning("removing pod sandbox %s: %s", sandbox_id[:13], err)

    def kill_pod(self, observed: ObservedPod, grace_period: int | None, *, remove: bool) -> None:
        """Stop the pod's running containers in parallel, then its sandboxes (and remove)."""
        running = observed.running()
        if running:
            with ThreadPoolExecutor(len(running)) as pool:
                for container in running:
                    grace = grace_period
                    if grace is None:
                        grace = container.grace_period if container.grace_period is not None else 30
                    pool.submit(self._stop_container, container.id, grace)
        for sandbox in observed.sandboxes:
            if remove:
                self._remove_sandbox(sandbox.id)
            elif sandbox.ready:
                try:
                    self.client.stop_pod_sandbox(
                        cri.StopPodSandboxRequest(pod_sandbox_id=sandbox.id)
                    )
                except CRIError as err:
                    log.warning("stopping pod sandbox %s: %s", sandbox.id[:13], err)
        if remove:
            # containers whose sandbox was already gone
            for container in observed.containers:
                if not any(s.id == container.sandbox_id for s in observed.sandboxes):
                    try:
                        self.client.remove_container(
                            cri.RemoveContainerRequest(container_id=container.id)
                        )
                    except CRIError as err:
                        log.warning("removing container %s: %s", container.id[:13], err)


def _non_root_refusal(pod: Pod, container: Container, image_user: str) -> str:
    """The kubelet's runAsNonRoot check ("" when the container may start)."""
    own, pod_sc = container.security_context, pod.spec.security_context
    non_root = own.run_as_non_root if own.run_as_non_root is not None else pod_sc.run_as_non_root
    if not non_root:
        return ""
    uid = own.run_as_user if own.run_as_user is not None else pod_sc.run_as_user
    if uid is not None:
        return "container's runAsUser breaks non-root policy" if uid == 0 else ""
    if image_user in ("", "0", "root"):
        return "container has runAsNonRoot and image will run as root"
    if not image_user.isdigit():
        return "container has runAsNonRoot and image has non-numeric user, cannot verify"
    return ""
