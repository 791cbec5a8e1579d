"""The container RPCs: Create, Start, Stop, Remove, ContainerStatus, UpdateContainerResources,
ReopenContainerLog, CheckpointContainer, ListContainers and StreamContainers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from pycri.api import api_pb2 as cri
from pycri.core import filters
from pycri.core.engine import container_log_path
from pycri.core.identity import check_policy_supported
from pycri.core.image_volumes import find_image_mounts, validate_image_mounts
from pycri.core.policy import check_privileges
from pycri.core.recursive_readonly import check_recursive_read_only
from pycri.core.rpcs.base import RuntimeBase, batches, rpc, state_name
from pycri.core.validation import (
    validate_container_config,
    validate_filter,
    validate_linux_resources,
    validate_pod_sandbox_config,
)
from pycri.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnimplementedError,
)

__all__ = ["ContainerRPCs"]


class ContainerRPCs(RuntimeBase):
    """Containers: their lifecycle, status, resources, log and lists."""

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
                f"container {container_id[:13]} is {state_name(state, cri.ContainerState)}: "
                "only a created container can be started"
            )
        self.shim.start_container(container_id)
        self._publish(container_id, cri.CONTAINER_STARTED_EVENT)
        return cri.StartContainerResponse()

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

    @rpc("ReopenContainerLog")
    def reopen_container_log(
        self, request: cri.ReopenContainerLogRequest
    ) -> cri.ReopenContainerLogResponse:
        container_id = self._resolve_container(request.container_id)
        self._require_running(container_id, "reopen the log of")
        self.shim.reopen_container_log(container_id)
        return cri.ReopenContainerLogResponse()

    @rpc("CheckpointContainer")
    def checkpoint_container(
        self, request: cri.CheckpointContainerRequest
    ) -> cri.CheckpointContainerResponse:
        raise UnimplementedError("container checkpointing is not supported by pycri")

    @rpc("StreamContainers")
    def stream_containers(
        self, request: cri.StreamContainersRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamContainersResponse]:
        for batch in batches(self._containers(request)):
            yield cri.StreamContainersResponse(containers=batch)


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
