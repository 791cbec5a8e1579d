"""A typed CRI client for any endpoint: pycri-server, containerd, CRI-O, cri-dockerd.

    from pycri.client import CRIClient
    from pycri.api import api_pb2 as cri

    with CRIClient("unix:///run/containerd/containerd.sock") as client:
        print(client.version().runtime_name)
        pods = client.list_pod_sandbox().items

Every method takes the RPC's request message (omitted means empty) and
returns its response; a failed call raises the :mod:`pycri.errors` class of
its status code, the same exceptions the shims raise in process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar, overload

import grpc
from google.protobuf.message import Message

from pycri.api import api_pb2 as cri
from pycri.endpoint import parse_endpoint
from pycri.errors import CRIError, UnavailableError, error_for_code
from pycri.shim import PullProgress

__all__ = ["DEFAULT_TIMEOUT", "CRIClient", "ClientTLS"]

DEFAULT_TIMEOUT = 10.0
_MAX_MESSAGE = 16 * 1024 * 1024
RUNTIME = "runtime.v1.RuntimeService"
IMAGE = "runtime.v1.ImageService"

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Item = TypeVar("Item", covariant=True)


class _StreamCall(Protocol[Item]):
    """What grpc's unary_stream stubs return: an iterator that can be cancelled."""

    def __iter__(self) -> Iterator[Item]: ...
    def __next__(self) -> Item: ...
    def cancel(self) -> bool: ...


def _translate(err: grpc.RpcError, rpc: str, endpoint: str) -> CRIError:
    code = err.code()
    details = err.details() or code.name
    # grpc's own words for "nothing answers there", not an engine's UNAVAILABLE
    if code == grpc.StatusCode.UNAVAILABLE and "failed to connect to all addresses" in details:
        return UnavailableError(
            f"cannot reach the CRI endpoint {endpoint}: {details}. "
            "Is the runtime running, and is this the right socket?",
            rpc=rpc,
        )
    return error_for_code(code, details, rpc=rpc)


@dataclass(frozen=True)
class ClientTLS:
    """PEM files for a TLS endpoint: the CA that signed the server, and our own cert for mTLS."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes() if self.key else None,
            certificate_chain=self.cert.read_bytes() if self.cert else None,
        )


class _Call(Generic[Req, Resp]):
    """One CRI method bound to a client: ``client.version(request, timeout=...)``."""

    def __init__(self, client: CRIClient, spec: _Rpc[Req, Resp]) -> None:
        self._client = client
        self._spec = spec
        channel = client._image_channel if spec.service == IMAGE else client._channel
        self._stub = channel.unary_unary(
            f"/{spec.service}/{spec.name}",
            request_serializer=spec.request.SerializeToString,
            response_deserializer=spec.response.FromString,
        )

    def __call__(self, request: Req | None = None, *, timeout: float | None = -1.0) -> Resp:
        if timeout is not None and timeout < 0:
            timeout = self._spec.timeout if self._spec.timeout != -1.0 else self._client.timeout
        try:
            response: Resp = self._stub(
                request if request is not None else self._spec.request(), timeout=timeout
            )
        except grpc.RpcError as err:
            raise _translate(err, self._spec.name, self._client.endpoint) from None
        return response


class _Rpc(Generic[Req, Resp]):
    """Declares a unary CRI method on CRIClient (a descriptor, so it stays typed)."""

    def __init__(
        self,
        service: str,
        name: str,
        request: type[Req],
        response: type[Resp],
        timeout: float | None = -1.0,
    ) -> None:
        self.service, self.name, self.request, self.response = service, name, request, response
        self.timeout = timeout  # -1: the client's default; None: no deadline
        self._attr = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        self._attr = attr

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: CRIClient, owner: type) -> _Call[Req, Resp]: ...
    def __get__(self, obj: CRIClient | None, owner: type) -> Self | _Call[Req, Resp]:
        if obj is None:
            return self
        call = _Call(obj, self)
        obj.__dict__[self._attr] = call  # build the stub once per client
        return call


class CRIClient:
    """Client of one CRI endpoint (and optionally a separate image endpoint)."""

    def __init__(
        self,
        endpoint: str,
        *,
        image_endpoint: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        tls: ClientTLS | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.image_endpoint = image_endpoint or endpoint
        self.timeout = timeout
        self._tls = tls
        self._channel = self._open(endpoint)
        self._image_channel = (
            self._channel if self.image_endpoint == endpoint else self._open(self.image_endpoint)
        )

    def _open(self, endpoint: str) -> grpc.Channel:
        options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
        ]
        target = parse_endpoint(endpoint).grpc_target
        if self._tls is not None:
            return grpc.secure_channel(target, self._tls.credentials(), options)
        return grpc.insecure_channel(target, options)

    def close(self) -> None:
        self._channel.close()
        if self._image_channel is not self._channel:
            self._image_channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the endpoint accepts connections (UnavailableError after ``timeout``)."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise UnavailableError(
                f"the CRI endpoint {self.endpoint} did not become ready within {timeout:g}s"
            ) from None

    def get_container_events(
        self, request: cri.GetEventsRequest | None = None, *, timeout: float | None = None
    ) -> Iterator[cri.ContainerEventResponse]:
        """Container lifecycle events as they happen (a server stream)."""
        return self._stream(
            RUNTIME,
            "GetContainerEvents",
            request or cri.GetEventsRequest(),
            cri.ContainerEventResponse,
            timeout,
        )

    def stream_container_stats(
        self,
        request: cri.StreamContainerStatsRequest | None = None,
        *,
        timeout: float | None = None,
    ) -> Generator[cri.StreamContainerStatsResponse, None, None]:
        """ListContainerStats as a server stream, in batches; ``close()`` cancels it."""
        return self._stream(
            RUNTIME,
            "StreamContainerStats",
            request or cri.StreamContainerStatsRequest(),
            cri.StreamContainerStatsResponse,
            timeout,
        )

    def stream_pod_sandbox_stats(
        self,
        request: cri.StreamPodSandboxStatsRequest | None = None,
        *,
        timeout: float | None = None,
    ) -> Generator[cri.StreamPodSandboxStatsResponse, None, None]:
        """ListPodSandboxStats as a server stream, in batches; ``close()`` cancels it."""
        return self._stream(
            RUNTIME,
            "StreamPodSandboxStats",
            request or cri.StreamPodSandboxStatsRequest(),
            cri.StreamPodSandboxStatsResponse,
            timeout,
        )

    def watch_pull_progress(
        self, image: str = "", *, timeout: float | None = None
    ) -> Iterator[PullProgress]:
        """Steps of image pulls as they happen (pycri-server only: ``pycri.v1.PullProgress``).

        Start watching before calling :meth:`pull_image` from another thread;
        other runtimes answer UnimplementedError.
        """
        stub: Callable[..., Iterator[bytes]] = self._image_channel.unary_stream(
            "/pycri.v1.PullProgress/Watch"
        )
        call = stub(json.dumps({"image": image}).encode(), timeout=timeout)

        def steps() -> Iterator[PullProgress]:
            try:
                for raw in call:
                    yield PullProgress(**json.loads(raw))
            except grpc.RpcError as err:
                raise _translate(err, "PullProgress/Watch", self.endpoint) from None

        return steps()

    def _stream(
        self,
        service: str,
        name: str,
        request: Message,
        response: type[Resp],
        timeout: float | None,
    ) -> Generator[Resp, None, None]:
        stub: Callable[..., _StreamCall[Resp]] = self._channel.unary_stream(
            f"/{service}/{name}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        call = stub(request, timeout=timeout)  # started now, not at the first next()

        def responses() -> Generator[Resp, None, None]:
            try:
                yield from call
            except grpc.RpcError as err:
                raise _translate(err, name, self.endpoint) from None
            finally:
                call.cancel()  # the caller closed the iterator early: the server stops too

        return responses()

    # RuntimeService
    version = _Rpc(RUNTIME, "Version", cri.VersionRequest, cri.VersionResponse)
    status = _Rpc(RUNTIME, "Status", cri.StatusRequest, cri.StatusResponse)
    runtime_config = _Rpc(
        RUNTIME, "RuntimeConfig", cri.RuntimeConfigRequest, cri.RuntimeConfigResponse
    )
    update_runtime_config = _Rpc(
        RUNTIME,
        "UpdateRuntimeConfig",
        cri.UpdateRuntimeConfigRequest,
        cri.UpdateRuntimeConfigResponse,
    )
    run_pod_sandbox = _Rpc(
        RUNTIME,
        "RunPodSandbox",
        cri.RunPodSandboxRequest,
        cri.RunPodSandboxResponse,
        timeout=None,  # the runtime may pull the pause image first
    )
    stop_pod_sandbox = _Rpc(
        RUNTIME, "StopPodSandbox", cri.StopPodSandboxRequest, cri.StopPodSandboxResponse
    )
    remove_pod_sandbox = _Rpc(
        RUNTIME, "RemovePodSandbox", cri.RemovePodSandboxRequest, cri.RemovePodSandboxResponse
    )
    pod_sandbox_status = _Rpc(
        RUNTIME, "PodSandboxStatus", cri.PodSandboxStatusRequest, cri.PodSandboxStatusResponse
    )
    list_pod_sandbox = _Rpc(
        RUNTIME, "ListPodSandbox", cri.ListPodSandboxRequest, cri.ListPodSandboxResponse
    )
    create_container = _Rpc(
        RUNTIME, "CreateContainer", cri.CreateContainerRequest, cri.CreateContainerResponse
    )
    start_container = _Rpc(
        RUNTIME, "StartContainer", cri.StartContainerRequest, cri.StartContainerResponse
    )
    stop_container = _Rpc(
        RUNTIME,
        "StopContainer",
        cri.StopContainerRequest,
        cri.StopContainerResponse,
        timeout=None,  # the request carries its own grace period
    )
    remove_container = _Rpc(
        RUNTIME, "RemoveContainer", cri.RemoveContainerRequest, cri.RemoveContainerResponse
    )
    list_containers = _Rpc(
        RUNTIME, "ListContainers", cri.ListContainersRequest, cri.ListContainersResponse
    )
    container_status = _Rpc(
        RUNTIME, "ContainerStatus", cri.ContainerStatusRequest, cri.ContainerStatusResponse
    )
    update_container_resources = _Rpc(
        RUNTIME,
        "UpdateContainerResources",
        cri.UpdateContainerResourcesRequest,
        cri.UpdateContainerResourcesResponse,
    )
    reopen_container_log = _Rpc(
        RUNTIME,
        "ReopenContainerLog",
        cri.ReopenContainerLogRequest,
        cri.ReopenContainerLogResponse,
    )
    exec_sync = _Rpc(
        RUNTIME,
        "ExecSync",
        cri.ExecSyncRequest,
        cri.ExecSyncResponse,
        timeout=None,  # the request carries its own timeout
    )
    exec = _Rpc(RUNTIME, "Exec", cri.ExecRequest, cri.ExecResponse)
    attach = _Rpc(RUNTIME, "Attach", cri.AttachRequest, cri.AttachResponse)
    port_forward = _Rpc(RUNTIME, "PortForward", cri.PortForwardRequest, cri.PortForwardResponse)
    container_stats = _Rpc(
        RUNTIME, "ContainerStats", cri.ContainerStatsRequest, cri.ContainerStatsResponse
    )
    list_container_stats = _Rpc(
        RUNTIME,
        "ListContainerStats",
        cri.ListContainerStatsRequest,
        cri.ListContainerStatsResponse,
    )
    pod_sandbox_stats = _Rpc(
        RUNTIME, "PodSandboxStats", cri.PodSandboxStatsRequest, cri.PodSandboxStatsResponse
    )
    list_pod_sandbox_stats = _Rpc(
        RUNTIME,
        "ListPodSandboxStats",
        cri.ListPodSandboxStatsRequest,
        cri.ListPodSandboxStatsResponse,
    )
    checkpoint_container = _Rpc(
        RUNTIME,
        "CheckpointContainer",
        cri.CheckpointContainerRequest,
        cri.CheckpointContainerResponse,
    )
    list_metric_descriptors = _Rpc(
        RUNTIME,
        "ListMetricDescriptors",
        cri.ListMetricDescriptorsRequest,
        cri.ListMetricDescriptorsResponse,
    )
    list_pod_sandbox_metrics = _Rpc(
        RUNTIME,
        "ListPodSandboxMetrics",
        cri.ListPodSandboxMetricsRequest,
        cri.ListPodSandboxMetricsResponse,
    )
    update_pod_sandbox_resources = _Rpc(
        RUNTIME,
        "UpdatePodSandboxResources",
        cri.UpdatePodSandboxResourcesRequest,
        cri.UpdatePodSandboxResourcesResponse,
    )

    # ImageService
    list_images = _Rpc(IMAGE, "ListImages", cri.ListImagesRequest, cri.ListImagesResponse)
    image_status = _Rpc(IMAGE, "ImageStatus", cri.ImageStatusRequest, cri.ImageStatusResponse)
    pull_image = _Rpc(IMAGE, "PullImage", cri.PullImageRequest, cri.PullImageResponse, timeout=None)
    remove_image = _Rpc(IMAGE, "RemoveImage", cri.RemoveImageRequest, cri.RemoveImageResponse)
    image_fs_info = _Rpc(IMAGE, "ImageFsInfo", cri.ImageFsInfoRequest, cri.ImageFsInfoResponse)
