"""The pod sandbox RPCs: Run, Stop, Remove, PodSandboxStatus, UpdatePodSandboxResources,
ListPodSandbox and StreamPodSandboxes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from pycri.api import api_pb2 as cri
from pycri.core import filters
from pycri.core.policy import check_privileges
from pycri.core.rpcs.base import FULL_ID_LENGTH, RuntimeBase, batches, rpc, state_name
from pycri.core.sandbox_resources import PodResources, SandboxResources, info_with_resources
from pycri.core.validation import (
    validate_filter,
    validate_linux_resources,
    validate_pod_sandbox_config,
)
from pycri.errors import (
    AlreadyExistsError,
    CRIError,
    InvalidArgumentError,
    NotFoundError,
    UnimplementedError,
)

__all__ = ["SandboxRPCs"]

log = logging.getLogger(__name__)


def _pod_key(meta: cri.PodSandboxMetadata) -> str:
    return f"{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}"


class SandboxRPCs(RuntimeBase):
    """Pod sandboxes: their lifecycle, status, resources and lists."""

    @rpc("RunPodSandbox")
    def run_pod_sandbox(self, request: cri.RunPodSandboxRequest) -> cri.RunPodSandboxResponse:
        config = request.config
        if not request.HasField("config"):
            raise InvalidArgumentError("config is required")
        validate_pod_sandbox_config(config)
        check_privileges(config.linux.security_context, self.allow_privileged)
        handlers = self.shim.runtime_handlers()
        if request.runtime_handler not in handlers:
            raise InvalidArgumentError(
                f"runtime_handler {request.runtime_handler!r} is not configured; "
                f"available: {', '.join(repr(h) for h in handlers)}"
            )
        key = _pod_key(config.metadata)
        with self._names.reserve(key, "pod sandbox"):
            for pod in self.shim.list_pod_sandboxes(None):
                if _pod_key(pod.metadata) == key:
                    raise AlreadyExistsError(
                        f"pod sandbox name {key!r} is already used by {pod.id[:13]} "
                        f"({state_name(pod.state, cri.PodSandboxState)}); remove it first"
                    )
            pod_id = self.shim.run_pod_sandbox(config, request.runtime_handler)
        log.info("pod sandbox %s started as %s", key, pod_id)
        return cri.RunPodSandboxResponse(pod_sandbox_id=pod_id)

    @rpc("StopPodSandbox")
    def stop_pod_sandbox(self, request: cri.StopPodSandboxRequest) -> cri.StopPodSandboxResponse:
        try:
            pod_id = self._resolve_pod(request.pod_sandbox_id)
            for container in self._pod_containers(pod_id):
                if container.state == cri.CONTAINER_RUNNING:
                    self._stop_container(container.id, 0)
            self.shim.stop_pod_sandbox(pod_id)
        except NotFoundError:
            pass  # already gone: stop is idempotent
        return cri.StopPodSandboxResponse()

    @rpc("RemovePodSandbox")
    def remove_pod_sandbox(
        self, request: cri.RemovePodSandboxRequest
    ) -> cri.RemovePodSandboxResponse:
        try:
            pod_id = self._resolve_pod(request.pod_sandbox_id)
            for container in self._pod_containers(pod_id):
                self._remove_container(container.id, container.state)
            if self.shim.pod_sandbox(pod_id).state == cri.SANDBOX_READY:
                self.shim.stop_pod_sandbox(pod_id)
            store = self.shim.pod_sandbox_resources_store(pod_id)  # a router forgets the owner
            self.shim.remove_pod_sandbox(pod_id)
            if store is not None:
                store.forget(pod_id)
        except NotFoundError:
            # already gone (remove is idempotent), perhaps behind pycri's back: its record too
            if len(request.pod_sandbox_id) >= FULL_ID_LENGTH:
                store = self.shim.pod_sandbox_resources_store(request.pod_sandbox_id)
                if store is not None:
                    store.forget(request.pod_sandbox_id)
        return cri.RemovePodSandboxResponse()

    @rpc("PodSandboxStatus")
    def pod_sandbox_status(
        self, request: cri.PodSandboxStatusRequest
    ) -> cri.PodSandboxStatusResponse:
        pod_id = self._resolve_pod(request.pod_sandbox_id)
        status, info = self.shim.pod_sandbox_status(pod_id, request.verbose)
        response = cri.PodSandboxStatusResponse(status=status, timestamp=time.time_ns())
        if request.verbose:
            store = self.shim.pod_sandbox_resources_store(pod_id)
            recorded = store.load(pod_id) if store is not None else None
            response.info.update(info_with_resources(info, recorded) if recorded else info)
        return response

    @rpc("UpdatePodSandboxResources")
    def update_pod_sandbox_resources(
        self, request: cri.UpdatePodSandboxResourcesRequest
    ) -> cri.UpdatePodSandboxResourcesResponse:
        """Record the pod's new overhead and aggregate resources, as containerd does.

        The kubelet has already resized the pod cgroup; this call informs the
        runtime (containerd hands the figures to NRI plugins), best effort:
        the kubelet logs an error and carries on, and ignores UNIMPLEMENTED.
        The figures show in verbose PodSandboxStatus until the pod is removed.
        """
        given: dict[str, cri.LinuxContainerResources] = {}
        for name in ("overhead", "resources"):
            if request.HasField(name):
                given[name] = cri.LinuxContainerResources()
                given[name].CopyFrom(getattr(request, name))
                validate_linux_resources(given[name], name)
        pod_id = self._resolve_pod(request.pod_sandbox_id)
        self.shim.pod_sandbox_status(pod_id, False)  # NOT_FOUND for a full id of nothing
        store = self.shim.pod_sandbox_resources_store(pod_id)
        if store is None:
            raise UnimplementedError(
                f"the {self.shim.name} shim has nowhere to keep pod sandbox resources; "
                "the kubelet has resized the pod cgroup itself and carries on"
            )
        store.save(pod_id, PodResources(given.get("overhead"), given.get("resources")))
        if not self._pod_exists(pod_id):
            # removed while we saved: RemovePodSandbox may have forgotten it just before
            store.forget(pod_id)
            raise NotFoundError(f"pod sandbox {pod_id[:13]} was removed")
        self._sweep_pod_resources(store, pod_id)
        return cri.UpdatePodSandboxResourcesResponse()

    def _sweep_pod_resources(self, store: SandboxResources, recorded: str) -> None:
        """Best effort: forget the records of pods the engine lost (one list, then a status
        call to confirm each missing one, so a pod created meanwhile keeps its record)."""
        if not [pod_id for pod_id in store.pod_ids() if pod_id != recorded]:
            return
        try:
            alive = {p.id for p in self.shim.list_pod_sandboxes(None)}
            store.sweep(lambda other: other not in alive and not self._pod_exists(other))
        except CRIError as err:
            log.warning("cannot sweep the resources of removed pod sandboxes: %s", err)

    def _pod_exists(self, pod_id: str) -> bool:
        try:
            self.shim.pod_sandbox_status(pod_id, False)
        except NotFoundError:
            return False
        return True

    @rpc("ListPodSandbox")
    def list_pod_sandbox(self, request: cri.ListPodSandboxRequest) -> cri.ListPodSandboxResponse:
        return cri.ListPodSandboxResponse(items=self._pods(request))

    @rpc("ListPodSandbox", encoded=True)
    def list_pod_sandbox_encoded(self, request: cri.ListPodSandboxRequest) -> bytes:
        """:meth:`list_pod_sandbox` serialised, from each pod's (kept) bytes."""
        return self._pod_list.encode(
            self._pods(request),
            memoise=self.shim.stable_list_entries,
            complete=not request.HasField("filter"),
        )

    def _pods(
        self, request: cri.ListPodSandboxRequest | cri.StreamPodSandboxesRequest
    ) -> list[cri.PodSandbox]:
        f = request.filter if request.HasField("filter") else None
        validate_filter(f)
        return filters.filter_pod_sandboxes(self.shim.list_pod_sandboxes(f), f)

    @rpc("StreamPodSandboxes")
    def stream_pod_sandboxes(
        self, request: cri.StreamPodSandboxesRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamPodSandboxesResponse]:
        for batch in batches(self._pods(request)):
            yield cri.StreamPodSandboxesResponse(pod_sandboxes=batch)
