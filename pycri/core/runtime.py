"""CRIRuntime: every CRI RPC, with the rules all shims share, over one Shim.

Each public method takes the RPC's request message and returns its response
message, so the gRPC servicer is a table lookup and Python code can drive a
runtime in process with exactly the same semantics as over the wire.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from pycri import __version__
from pycri.api import api_pb2 as cri
from pycri.core import filters
from pycri.core.encoding import ListEncoder
from pycri.core.engine import container_log_path
from pycri.core.events import EventBus
from pycri.core.identity import check_policy_supported
from pycri.core.image_volumes import find_image_mounts, validate_image_mounts
from pycri.core.images import is_image_id, normalize_reference
from pycri.core.names import NameReservations
from pycri.core.policy import check_privileges
from pycri.core.recursive_readonly import check_recursive_read_only
from pycri.core.sandbox_resources import PodResources, SandboxResources, info_with_resources
from pycri.core.validation import (
    require_id,
    validate_container_config,
    validate_exec_cmd,
    validate_filter,
    validate_image_spec,
    validate_linux_resources,
    validate_pod_sandbox_config,
)
from pycri.errors import (
    AlreadyExistsError,
    CRIError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnimplementedError,
)
from pycri.shim import PullProgress, Shim

if TYPE_CHECKING:
    from pycri.streaming.server import StreamingServer

__all__ = ["CRI_API_VERSION", "KUBELET_API_VERSION", "RUNTIME_NAME", "CRIRuntime"]

log = logging.getLogger(__name__)

RUNTIME_NAME = "pycri"
CRI_API_VERSION = "v1"
KUBELET_API_VERSION = "0.1.0"
#: serialised VersionResponses kept, one per engine version string seen
_VERSIONS_KEPT = 16
_FULL_ID_LENGTH = 64
#: items per message of the Stream* list RPCs, well under gRPC's 4 MiB default
STREAM_BATCH = 200

P = ParamSpec("P")
Resp = TypeVar("Resp")
Method = Callable[Concatenate["CRIRuntime", P], Resp]


def rpc(name: str, *, encoded: bool = False) -> Callable[[Method[P, Resp]], Method[P, Resp]]:
    """Mark a method as the handler of RPC ``name``.

    It lets the shim inject faults first (``Shim.before_rpc``) and labels
    any CRIError raised with the RPC's name. An ``encoded`` handler returns
    the response already serialised, for the gRPC servicer to send as is;
    it must answer exactly what the plain handler of the same RPC answers.
    """

    def decorate(fn: Method[P, Resp]) -> Method[P, Resp]:
        @functools.wraps(fn)
        def handler(self: CRIRuntime, /, *args: P.args, **kwargs: P.kwargs) -> Resp:
            self.shim.before_rpc(name)
            try:
                return fn(self, *args, **kwargs)
            except CRIError as err:
                if err.rpc is None:
                    err.rpc = name
                raise
            finally:
                self.shim.after_rpc(name)

        if encoded:
            handler.rpc_encoded = name  # type: ignore[attr-defined]
        else:
            handler.rpc_name = name  # type: ignore[attr-defined]
        return handler

    return decorate


def _pod_key(meta: cri.PodSandboxMetadata) -> str:
    return f"{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}"


def _state_name(value: int, enum: type) -> str:
    return str(enum.Name(value))  # type: ignore[attr-defined]


class CRIRuntime:
    """The CRI served by one shim. Thread safe as far as the shim is.

    ``allow_privileged`` lets pods run privileged or in host namespaces
    (refused with PERMISSION_DENIED otherwise). ``streaming`` serves the
    URLs that Exec, Attach and PortForward return (UNIMPLEMENTED without it).
    """

    def __init__(
        self,
        shim: Shim,
        *,
        allow_privileged: bool = False,
        streaming: StreamingServer | None = None,
    ) -> None:
        self.shim = shim
        self.allow_privileged = allow_privileged
        self.streaming = streaming
        self.events: EventBus[cri.ContainerEventResponse] = EventBus()
        #: image pull progress, for clients that draw a progress bar (pycri.v1.PullProgress)
        self.pulls: EventBus[PullProgress] = EventBus()
        shim.emit_event = self.events.publish
        self._names = NameReservations()
        self._versions: dict[str, bytes] = {}
        self._container_list = ListEncoder(cri.ListContainersResponse, "containers")
        self._pod_list = ListEncoder(cri.ListPodSandboxResponse, "items")

    @classmethod
    def rpc_handlers(cls) -> dict[str, str]:
        """RPC name -> method name, for every RPC this class serves."""
        return {
            member.rpc_name: attr
            for attr, member in vars(cls).items()
            if hasattr(member, "rpc_name")
        }

    @classmethod
    def encoded_rpc_handlers(cls) -> dict[str, str]:
        """RPC name -> name of the method answering it with the serialised response.

        The gRPC servicer prefers these (the hot RPCs: the kubelet relists
        every second); each answers exactly what the plain handler does.
        """
        return {
            member.rpc_encoded: attr
            for attr, member in vars(cls).items()
            if hasattr(member, "rpc_encoded")
        }

    def close(self) -> None:
        self.shim.close()

    # -- lookups -------------------------------------------------------------

    def _resolve_pod(self, pod_id: str, field: str = "pod_sandbox_id") -> str:
        require_id(pod_id, field)
        if len(pod_id) >= _FULL_ID_LENGTH:
            return pod_id
        ids = [p.id for p in self.shim.list_pod_sandboxes(cri.PodSandboxFilter(id=pod_id))]
        return self._pick(pod_id, ids, "pod sandbox")

    def _resolve_container(self, container_id: str, field: str = "container_id") -> str:
        require_id(container_id, field)
        if len(container_id) >= _FULL_ID_LENGTH:
            return container_id
        ids = [c.id for c in self.shim.list_containers(cri.ContainerFilter(id=container_id))]
        return self._pick(container_id, ids, "container")

    @staticmethod
    def _pick(prefix: str, ids: list[str], what: str) -> str:
        matches = sorted({i for i in ids if i.startswith(prefix)})
        if prefix in matches:
            return prefix
        if not matches:
            raise NotFoundError(f"{what} {prefix!r} not found")
        if len(matches) > 1:
            raise InvalidArgumentError(
                f"{what} id prefix {prefix!r} is ambiguous: it matches {len(matches)} ids"
            )
        return matches[0]

    def _container_state(self, container_id: str) -> cri.ContainerState:
        return self.shim.container_state(container_id)

    def _publish(self, container_id: str, kind: cri.ContainerEventType) -> None:
        self.events.publish(
            cri.ContainerEventResponse(
                container_id=container_id,
                container_event_type=kind,
                created_at=time.time_ns(),
            )
        )

    # -- identity and health ---------------------------------------------------

    def _engine_version(self) -> str:
        try:
            return self.shim.runtime_version()
        except CRIError as err:
            return f"engine unreachable: {err.message}"

    def _version_response(self, engine: str) -> cri.VersionResponse:
        return cri.VersionResponse(
            version=KUBELET_API_VERSION,
            runtime_name=RUNTIME_NAME,
            runtime_version=f"{__version__} ({self.shim.name} shim, {engine})",
            runtime_api_version=CRI_API_VERSION,
        )

    @rpc("Version")
    def version(self, request: cri.VersionRequest) -> cri.VersionResponse:
        return self._version_response(self._engine_version())

    @rpc("Version", encoded=True)
    def version_encoded(self, request: cri.VersionRequest) -> bytes:
        """:meth:`version` serialised; the engine is still asked on every call."""
        engine = self._engine_version()
        encoded = self._versions.get(engine)
        if encoded is None:
            encoded = self._version_response(engine).SerializeToString()
            if len(self._versions) >= _VERSIONS_KEPT:
                self._versions = {}  # an engine whose version text keeps changing
            self._versions[engine] = encoded
        return encoded

    @rpc("Status")
    def status(self, request: cri.StatusRequest) -> cri.StatusResponse:
        response = cri.StatusResponse(
            status=cri.RuntimeStatus(conditions=self.shim.conditions()),
            runtime_handlers=[
                cri.RuntimeHandler(name=name, features=self.shim.runtime_handler_features(name))
                for name in self.shim.runtime_handlers()
            ],
            features=cri.RuntimeFeatures(
                supplemental_groups_policy=self.shim.supplemental_groups_policy()
            ),
        )
        if request.verbose:
            response.info.update(self.shim.info())
        return response

    @rpc("RuntimeConfig")
    def runtime_config(self, request: cri.RuntimeConfigRequest) -> cri.RuntimeConfigResponse:
        return cri.RuntimeConfigResponse(
            linux=cri.LinuxRuntimeConfiguration(cgroup_driver=self.shim.cgroup_driver())
        )

    @rpc("UpdateRuntimeConfig")
    def update_runtime_config(
        self, request: cri.UpdateRuntimeConfigRequest
    ) -> cri.UpdateRuntimeConfigResponse:
        self.shim.update_runtime_config(request.runtime_config)
        return cri.UpdateRuntimeConfigResponse()

    # -- pod sandboxes -----------------------------------------------------------

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
                        f"({_state_name(pod.state, cri.PodSandboxState)}); remove it first"
                    )
            pod_id = self.shim.run_pod_sandbox(config, request.runtime_handler)
        log.info("pod sandbox %s started as %s", key, pod_id)
        return cri.RunPodSandboxResponse(pod_sandbox_id=pod_id)

    def _pod_containers(self, pod_id: str) -> list[cri.Container]:
        hint = cri.ContainerFilter(pod_sandbox_id=pod_id)
        return filters.filter_containers(self.shim.list_containers(hint), hint)

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
            if len(request.pod_sandbox_id) >= _FULL_ID_LENGTH:
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

    # -- containers ----------------------------------------------------------------

    @rpc("CreateContainer")
    def create_container(self, request: cri.CreateContainerRequest) -> cri.CreateContainerResponse:
        if not request.HasField("config"):
            raise InvalidArgumentError("config is required")
        config = request.config
        validate_container_config(config)
        validate_image_mounts(config)
        check_privileges(config.linux.security_context, self.allow_privileged)
        if request.HasField("sandbox_config"):
            validate_pod_sandbox_config(request.sandbox_config, "sandbox_config")
        pod_id = self._resolve_pod(request.pod_sandbox_id)
        pod = self.shim.pod_sandbox(pod_id)
        if pod.state != cri.SANDBOX_READY:
            raise FailedPreconditionError(
                f"pod sandbox {pod_id[:13]} is not ready: containers can only be created "
                "in a running pod"
            )
        handler = pod.runtime_handler
        features = self.shim.runtime_handler_features(handler)
        check_recursive_read_only(config.mounts, features, handler)
        check_policy_supported(
            config.linux.security_context,
            self.shim.supplemental_groups_policy(handler),
            handler or self.shim.name,
        )
        meta = config.metadata
        key = f"{pod_id}/{meta.name}_{meta.attempt}"
        with self._names.reserve(key, "container"):
            for container in self._pod_containers(pod_id):
                if (container.metadata.name, container.metadata.attempt) == (
                    meta.name,
                    meta.attempt,
                ):
                    raise AlreadyExistsError(
                        f"container name {meta.name!r} (attempt {meta.attempt}) is already "
                        f"used in pod {pod_id[:13]} by {container.id[:13]}; remove it first"
                    )
            _check_log_file(request.sandbox_config.log_directory, config.log_path)
            find_image_mounts(self.shim, config)  # NOT_FOUND here, not deep in a shim
            container_id = self.shim.create_container(pod_id, config, request.sandbox_config)
        self._publish(container_id, cri.CONTAINER_CREATED_EVENT)
        return cri.CreateContainerResponse(container_id=container_id)

    @rpc("StartContainer")
    def start_container(self, request: cri.StartContainerRequest) -> cri.StartContainerResponse:
        container_id = self._resolve_container(request.container_id)
        state = self._container_state(container_id)
        if state != cri.CONTAINER_CREATED:
            raise FailedPreconditionError(
                f"container {container_id[:13]} is {_state_name(state, cri.ContainerState)}: "
                "only a created container can be started"
            )
        self.shim.start_container(container_id)
        self._publish(container_id, cri.CONTAINER_STARTED_EVENT)
        return cri.StartContainerResponse()

    def _stop_container(self, container_id: str, timeout: int) -> None:
        self.shim.stop_container(container_id, timeout)
        self._publish(container_id, cri.CONTAINER_STOPPED_EVENT)

    @rpc("StopContainer")
    def stop_container(self, request: cri.StopContainerRequest) -> cri.StopContainerResponse:
        if request.timeout < 0:
            raise InvalidArgumentError("timeout must not be negative")
        try:
            container_id = self._resolve_container(request.container_id)
            if self._container_state(container_id) == cri.CONTAINER_RUNNING:
                self._stop_container(container_id, request.timeout)
        except NotFoundError:
            pass  # already gone: stop is idempotent
        return cri.StopContainerResponse()

    def _remove_container(self, container_id: str, state: cri.ContainerState) -> None:
        if state == cri.CONTAINER_RUNNING:
            self._stop_container(container_id, 0)
        self.shim.remove_container(container_id)
        self._publish(container_id, cri.CONTAINER_DELETED_EVENT)

    @rpc("RemoveContainer")
    def remove_container(self, request: cri.RemoveContainerRequest) -> cri.RemoveContainerResponse:
        try:
            container_id = self._resolve_container(request.container_id)
            self._remove_container(container_id, self._container_state(container_id))
        except NotFoundError:
            pass  # already gone: remove is idempotent
        return cri.RemoveContainerResponse()

    @rpc("ListContainers")
    def list_containers(self, request: cri.ListContainersRequest) -> cri.ListContainersResponse:
        return cri.ListContainersResponse(containers=self._containers(request))

    @rpc("ListContainers", encoded=True)
    def list_containers_encoded(self, request: cri.ListContainersRequest) -> bytes:
        """:meth:`list_containers` serialised, from each container's (kept) bytes."""
        return self._container_list.encode(
            self._containers(request),
            memoise=self.shim.stable_list_entries,
            complete=not request.HasField("filter"),
        )

    def _containers(
        self, request: cri.ListContainersRequest | cri.StreamContainersRequest
    ) -> list[cri.Container]:
        f = request.filter if request.HasField("filter") else None
        validate_filter(f)
        return filters.filter_containers(self.shim.list_containers(f), f)

    @rpc("ContainerStatus")
    def container_status(self, request: cri.ContainerStatusRequest) -> cri.ContainerStatusResponse:
        container_id = self._resolve_container(request.container_id)
        status, info = self.shim.container_status(container_id, request.verbose)
        response = cri.ContainerStatusResponse(status=status)
        if request.verbose:
            response.info.update(info)
        return response

    @rpc("UpdateContainerResources")
    def update_container_resources(
        self, request: cri.UpdateContainerResourcesRequest
    ) -> cri.UpdateContainerResourcesResponse:
        linux = request.linux if request.HasField("linux") else None
        if linux is not None:
            validate_linux_resources(linux, "linux")
        container_id = self._resolve_container(request.container_id)
        self.shim.update_container_resources(container_id, linux, request.annotations)
        return cri.UpdateContainerResourcesResponse()

    def _require_running(self, container_id: str, action: str) -> None:
        # the full status, not a shim's cached state: the container may have exited just now
        status, _ = self.shim.container_status(container_id, False)
        state = status.state
        if state != cri.CONTAINER_RUNNING:
            raise FailedPreconditionError(
                f"container {container_id[:13]} is {_state_name(state, cri.ContainerState)}: "
                f"cannot {action} a container that is not running"
            )

    @rpc("ReopenContainerLog")
    def reopen_container_log(
        self, request: cri.ReopenContainerLogRequest
    ) -> cri.ReopenContainerLogResponse:
        container_id = self._resolve_container(request.container_id)
        self._require_running(container_id, "reopen the log of")
        self.shim.reopen_container_log(container_id)
        return cri.ReopenContainerLogResponse()

    @rpc("ExecSync")
    def exec_sync(self, request: cri.ExecSyncRequest) -> cri.ExecSyncResponse:
        container_id = self._resolve_container(request.container_id)
        validate_exec_cmd(list(request.cmd))
        if request.timeout < 0:
            raise InvalidArgumentError("timeout must not be negative")
        self._require_running(container_id, "exec in")
        return self.shim.exec_sync(container_id, list(request.cmd), request.timeout)

    @rpc("Exec")
    def exec(self, request: cri.ExecRequest) -> cri.ExecResponse:
        from pycri.streaming.server import serving  # lazily: it loads websockets

        streaming = serving(self.streaming, self.shim, "Exec")
        container_id = self._resolve_container(request.container_id)
        validate_exec_cmd(list(request.cmd))
        self._require_running(container_id, "exec in")
        resolved = cri.ExecRequest()
        resolved.CopyFrom(request)
        resolved.container_id = container_id
        return cri.ExecResponse(url=streaming.get_exec(resolved))

    @rpc("Attach")
    def attach(self, request: cri.AttachRequest) -> cri.AttachResponse:
        from pycri.streaming.server import serving

        streaming = serving(self.streaming, self.shim, "Attach")
        container_id = self._resolve_container(request.container_id)
        self._require_running(container_id, "attach to")
        resolved = cri.AttachRequest()
        resolved.CopyFrom(request)
        resolved.container_id = container_id
        return cri.AttachResponse(url=streaming.get_attach(resolved))

    @rpc("PortForward")
    def port_forward(self, request: cri.PortForwardRequest) -> cri.PortForwardResponse:
        from pycri.streaming.server import serving

        streaming = serving(self.streaming, self.shim, "PortForward")
        pod_id = self._resolve_pod(request.pod_sandbox_id)
        status, _ = self.shim.pod_sandbox_status(pod_id, False)
        if status.state != cri.SANDBOX_READY:
            raise FailedPreconditionError(
                f"pod sandbox {pod_id[:13]} is not ready: cannot forward ports into it"
            )
        resolved = cri.PortForwardRequest(pod_sandbox_id=pod_id, port=request.port)
        return cri.PortForwardResponse(url=streaming.get_port_forward(resolved))

    @rpc("ContainerStats")
    def container_stats(self, request: cri.ContainerStatsRequest) -> cri.ContainerStatsResponse:
        container_id = self._resolve_container(request.container_id)
        stats = self.shim.container_stats([container_id])
        if not stats:
            raise NotFoundError(f"container {container_id[:13]} not found, or it has no stats")
        return cri.ContainerStatsResponse(stats=stats[0])

    @rpc("ListContainerStats")
    def list_container_stats(
        self, request: cri.ListContainerStatsRequest
    ) -> cri.ListContainerStatsResponse:
        ids = self._stats_container_ids(request)
        return cri.ListContainerStatsResponse(stats=self.shim.container_stats(ids) if ids else [])

    def _stats_container_ids(
        self, request: cri.ListContainerStatsRequest | cri.StreamContainerStatsRequest
    ) -> list[str]:
        f = request.filter if request.HasField("filter") else None
        validate_filter(f)
        hint = (
            cri.ContainerFilter(
                id=f.id, pod_sandbox_id=f.pod_sandbox_id, label_selector=f.label_selector
            )
            if f
            else None
        )
        return [c.id for c in filters.filter_containers(self.shim.list_containers(hint), hint)]

    @rpc("PodSandboxStats")
    def pod_sandbox_stats(self, request: cri.PodSandboxStatsRequest) -> cri.PodSandboxStatsResponse:
        pod_id = self._resolve_pod(request.pod_sandbox_id)
        stats = self.shim.pod_sandbox_stats([pod_id])
        if not stats:
            raise NotFoundError(f"pod sandbox {pod_id[:13]} not found, or it has no stats")
        return cri.PodSandboxStatsResponse(stats=stats[0])

    @rpc("ListPodSandboxStats")
    def list_pod_sandbox_stats(
        self, request: cri.ListPodSandboxStatsRequest
    ) -> cri.ListPodSandboxStatsResponse:
        ids = self._stats_pod_ids(request)
        return cri.ListPodSandboxStatsResponse(
            stats=self.shim.pod_sandbox_stats(ids) if ids else []
        )

    def _stats_pod_ids(
        self, request: cri.ListPodSandboxStatsRequest | cri.StreamPodSandboxStatsRequest
    ) -> list[str]:
        f = request.filter if request.HasField("filter") else None
        validate_filter(f)
        hint = cri.PodSandboxFilter(id=f.id, label_selector=f.label_selector) if f else None
        return [
            p.id for p in filters.filter_pod_sandboxes(self.shim.list_pod_sandboxes(hint), hint)
        ]

    @rpc("CheckpointContainer")
    def checkpoint_container(
        self, request: cri.CheckpointContainerRequest
    ) -> cri.CheckpointContainerResponse:
        raise UnimplementedError("container checkpointing is not supported by pycri")

    @rpc("ListMetricDescriptors")
    def list_metric_descriptors(
        self, request: cri.ListMetricDescriptorsRequest
    ) -> cri.ListMetricDescriptorsResponse:
        return cri.ListMetricDescriptorsResponse(descriptors=self.shim.metric_descriptors())

    @rpc("ListPodSandboxMetrics")
    def list_pod_sandbox_metrics(
        self, request: cri.ListPodSandboxMetricsRequest
    ) -> cri.ListPodSandboxMetricsResponse:
        return cri.ListPodSandboxMetricsResponse(pod_metrics=self.shim.pod_sandbox_metrics())

    # -- streaming lists and events -------------------------------------------------

    @rpc("StreamPodSandboxes")
    def stream_pod_sandboxes(
        self, request: cri.StreamPodSandboxesRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamPodSandboxesResponse]:
        for batch in _batches(self._pods(request)):
            yield cri.StreamPodSandboxesResponse(pod_sandboxes=batch)

    @rpc("StreamContainers")
    def stream_containers(
        self, request: cri.StreamContainersRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamContainersResponse]:
        for batch in _batches(self._containers(request)):
            yield cri.StreamContainersResponse(containers=batch)

    @rpc("StreamImages")
    def stream_images(
        self, request: cri.StreamImagesRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamImagesResponse]:
        # not self.list_images: that is another RPC to the shim's before/after hooks
        for batch in _batches(self._images(request)):
            yield cri.StreamImagesResponse(images=batch)

    @rpc("StreamPodSandboxMetrics")
    def stream_pod_sandbox_metrics(
        self, request: cri.StreamPodSandboxMetricsRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamPodSandboxMetricsResponse]:
        for batch in _batches(self.shim.pod_sandbox_metrics()):
            yield cri.StreamPodSandboxMetricsResponse(pod_sandbox_metrics=batch)

    @rpc("StreamContainerStats")
    def stream_container_stats(
        self, request: cri.StreamContainerStatsRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamContainerStatsResponse]:
        """ListContainerStats in batches: each batch's stats are fetched when it is due,
        so the first arrive early and a client that has gone stops the fetching."""
        for ids in _batches(self._stats_container_ids(request)):
            if not is_active():
                return
            stats = self.shim.container_stats(ids)
            if stats:  # all of the batch may have gone meanwhile
                yield cri.StreamContainerStatsResponse(container_stats=stats)

    @rpc("StreamPodSandboxStats")
    def stream_pod_sandbox_stats(
        self, request: cri.StreamPodSandboxStatsRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamPodSandboxStatsResponse]:
        """ListPodSandboxStats in batches, fetched as StreamContainerStats' are."""
        for ids in _batches(self._stats_pod_ids(request)):
            if not is_active():
                return
            stats = self.shim.pod_sandbox_stats(ids)
            if stats:
                yield cri.StreamPodSandboxStatsResponse(pod_sandbox_stats=stats)

    @rpc("GetContainerEvents")
    def get_container_events(
        self, request: cri.GetEventsRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.ContainerEventResponse]:
        subscription = self.events.subscribe()
        try:
            for event in subscription.events():
                if not is_active():
                    return
                if event is not None:
                    yield event
        finally:
            subscription.close()

    # -- images --------------------------------------------------------------------

    @rpc("ListImages")
    def list_images(self, request: cri.ListImagesRequest) -> cri.ListImagesResponse:
        return cri.ListImagesResponse(images=self._images(request))

    def _images(self, request: cri.ListImagesRequest | cri.StreamImagesRequest) -> list[cri.Image]:
        wanted = None
        if request.HasField("filter") and request.filter.image.image:
            wanted = normalize_reference(request.filter.image.image)
        return filters.filter_images(self.shim.list_images(), wanted)

    @rpc("ImageStatus")
    def image_status(self, request: cri.ImageStatusRequest) -> cri.ImageStatusResponse:
        ref = validate_image_spec(request.image, "image")
        image = self.shim.image_status(ref)
        if image is None:
            return cri.ImageStatusResponse()
        return cri.ImageStatusResponse(image=image)

    @rpc("PullImage")
    def pull_image(self, request: cri.PullImageRequest) -> cri.PullImageResponse:
        ref = validate_image_spec(request.image, "image")
        if is_image_id(ref):
            raise InvalidArgumentError(f"image {ref!r} is an image id; pull needs a reference")
        auth = request.auth if request.HasField("auth") else None
        image_ref = self.shim.pull_image(ref, auth, self.pulls.publish)
        return cri.PullImageResponse(image_ref=image_ref)

    @rpc("RemoveImage")
    def remove_image(self, request: cri.RemoveImageRequest) -> cri.RemoveImageResponse:
        ref = validate_image_spec(request.image, "image")
        try:
            self.shim.remove_image(ref)
        except NotFoundError:
            pass  # already gone: remove is idempotent
        return cri.RemoveImageResponse()

    @rpc("ImageFsInfo")
    def image_fs_info(self, request: cri.ImageFsInfoRequest) -> cri.ImageFsInfoResponse:
        return self.shim.image_fs_info()


def _check_log_file(log_directory: str, log_path: str) -> None:
    """Fail CreateContainer, not the log copier later, when the log cannot be written."""
    path = container_log_path(log_directory, log_path)
    if not path:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as err:
        raise FailedPreconditionError(
            f"cannot write the container log {path}: {err.strerror or err}"
        ) from None


Item = TypeVar("Item")


def _batches(items: Sequence[Item]) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), STREAM_BATCH):
        yield items[start : start + STREAM_BATCH]
