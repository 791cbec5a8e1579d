"""Every RPC with missing, empty or garbage fields: the right code, a message naming it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError, InvalidArgumentError, NotFoundError
from pycri.testing import FakeEndpoint

MISSING = "f" * 64
GOOD_META = cri.PodSandboxMetadata(name="p", namespace="ns", uid="u")


def container_config(**overrides: Any) -> cri.ContainerConfig:
    fields: dict[str, Any] = {
        "metadata": cri.ContainerMetadata(name="c"),
        "image": cri.ImageSpec(image="busybox"),
    }
    fields.update(overrides)
    return cri.ContainerConfig(**fields)


CASES: list[tuple[str, str, Any, type[CRIError], str]] = [
    # (id, client method, request, error, message fragment)
    ("runp-empty", "run_pod_sandbox", cri.RunPodSandboxRequest(), InvalidArgumentError, "config"),
    (
        "runp-no-name",
        "run_pod_sandbox",
        cri.RunPodSandboxRequest(
            config=cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(namespace="ns", uid="u"))
        ),
        InvalidArgumentError,
        "metadata.name",
    ),
    (
        "runp-underscore",
        "run_pod_sandbox",
        cri.RunPodSandboxRequest(
            config=cri.PodSandboxConfig(
                metadata=cri.PodSandboxMetadata(name="a_b", namespace="ns", uid="u")
            )
        ),
        InvalidArgumentError,
        "metadata.name",
    ),
    (
        "runp-relative-logdir",
        "run_pod_sandbox",
        cri.RunPodSandboxRequest(
            config=cri.PodSandboxConfig(metadata=GOOD_META, log_directory="x")
        ),
        InvalidArgumentError,
        "log_directory",
    ),
    (
        "runp-bad-port",
        "run_pod_sandbox",
        cri.RunPodSandboxRequest(
            config=cri.PodSandboxConfig(
                metadata=GOOD_META, port_mappings=[cri.PortMapping(container_port=70000)]
            )
        ),
        InvalidArgumentError,
        "container_port",
    ),
    (
        "runp-handler",
        "run_pod_sandbox",
        cri.RunPodSandboxRequest(
            config=cri.PodSandboxConfig(metadata=GOOD_META), runtime_handler="kata"
        ),
        InvalidArgumentError,
        "runtime_handler",
    ),
    (
        "stopp-empty",
        "stop_pod_sandbox",
        cri.StopPodSandboxRequest(),
        InvalidArgumentError,
        "pod_sandbox_id",
    ),
    (
        "rmp-empty",
        "remove_pod_sandbox",
        cri.RemovePodSandboxRequest(),
        InvalidArgumentError,
        "pod_sandbox_id",
    ),
    (
        "inspectp-empty",
        "pod_sandbox_status",
        cri.PodSandboxStatusRequest(),
        InvalidArgumentError,
        "pod_sandbox_id",
    ),
    (
        "inspectp-garbage",
        "pod_sandbox_status",
        cri.PodSandboxStatusRequest(pod_sandbox_id="a b\n"),
        InvalidArgumentError,
        "not a valid id",
    ),
    (
        "inspectp-missing",
        "pod_sandbox_status",
        cri.PodSandboxStatusRequest(pod_sandbox_id=MISSING),
        NotFoundError,
        "not found",
    ),
    (
        "create-empty",
        "create_container",
        cri.CreateContainerRequest(),
        InvalidArgumentError,
        "config",
    ),
    (
        "create-no-pod",
        "create_container",
        cri.CreateContainerRequest(config=container_config()),
        InvalidArgumentError,
        "pod_sandbox_id",
    ),
    (
        "create-missing-pod",
        "create_container",
        cri.CreateContainerRequest(pod_sandbox_id=MISSING, config=container_config()),
        NotFoundError,
        "not found",
    ),
    (
        "create-no-image",
        "create_container",
        cri.CreateContainerRequest(pod_sandbox_id=MISSING, config=container_config(image=None)),
        InvalidArgumentError,
        "config.image",
    ),
    (
        "create-bad-image",
        "create_container",
        cri.CreateContainerRequest(
            pod_sandbox_id=MISSING, config=container_config(image=cri.ImageSpec(image="UPPER"))
        ),
        InvalidArgumentError,
        "config.image",
    ),
    (
        "create-escaping-log",
        "create_container",
        cri.CreateContainerRequest(
            pod_sandbox_id=MISSING, config=container_config(log_path="../../etc/passwd")
        ),
        InvalidArgumentError,
        "log_path",
    ),
    (
        "create-relative-mount",
        "create_container",
        cri.CreateContainerRequest(
            pod_sandbox_id=MISSING,
            config=container_config(mounts=[cri.Mount(container_path="data")]),
        ),
        InvalidArgumentError,
        "container_path",
    ),
    (
        "create-bad-env",
        "create_container",
        cri.CreateContainerRequest(
            pod_sandbox_id=MISSING,
            config=container_config(envs=[cri.KeyValue(key="A=B", value="x")]),
        ),
        InvalidArgumentError,
        "envs[0]",
    ),
    (
        "start-empty",
        "start_container",
        cri.StartContainerRequest(),
        InvalidArgumentError,
        "container_id",
    ),
    (
        "start-missing",
        "start_container",
        cri.StartContainerRequest(container_id=MISSING),
        NotFoundError,
        "not found",
    ),
    (
        "stop-negative",
        "stop_container",
        cri.StopContainerRequest(container_id=MISSING, timeout=-1),
        InvalidArgumentError,
        "timeout",
    ),
    (
        "rm-empty",
        "remove_container",
        cri.RemoveContainerRequest(),
        InvalidArgumentError,
        "container_id",
    ),
    (
        "inspect-missing",
        "container_status",
        cri.ContainerStatusRequest(container_id=MISSING),
        NotFoundError,
        "not found",
    ),
    ("exec-empty", "exec_sync", cri.ExecSyncRequest(), InvalidArgumentError, "container_id"),
    (
        "exec-missing",
        "exec_sync",
        cri.ExecSyncRequest(container_id=MISSING, cmd=["true"]),
        NotFoundError,
        "not found",
    ),
    (
        "reopen-missing",
        "reopen_container_log",
        cri.ReopenContainerLogRequest(container_id=MISSING),
        NotFoundError,
        "not found",
    ),
    (
        "update-missing",
        "update_container_resources",
        cri.UpdateContainerResourcesRequest(container_id=MISSING),
        NotFoundError,
        "not found",
    ),
    (
        "update-negative-shares",
        "update_container_resources",
        cri.UpdateContainerResourcesRequest(
            container_id=MISSING, linux=cri.LinuxContainerResources(cpu_shares=-2)
        ),
        InvalidArgumentError,
        "linux.cpu_shares",
    ),
    (
        "updatep-empty",
        "update_pod_sandbox_resources",
        cri.UpdatePodSandboxResourcesRequest(),
        InvalidArgumentError,
        "pod_sandbox_id",
    ),
    (
        "updatep-missing",
        "update_pod_sandbox_resources",
        cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=MISSING),
        NotFoundError,
        "not found",
    ),
    (
        "updatep-bad-cpuset",
        "update_pod_sandbox_resources",
        cri.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=MISSING, overhead=cri.LinuxContainerResources(cpuset_cpus="1-0")
        ),
        InvalidArgumentError,
        "overhead.cpuset_cpus",
    ),
    (
        "stats-missing",
        "container_stats",
        cri.ContainerStatsRequest(container_id=MISSING),
        NotFoundError,
        "not found",
    ),
    (
        "statsp-missing",
        "pod_sandbox_stats",
        cri.PodSandboxStatsRequest(pod_sandbox_id=MISSING),
        NotFoundError,
        "not found",
    ),
    ("pull-empty", "pull_image", cri.PullImageRequest(), InvalidArgumentError, "image.image"),
    (
        "pull-garbage",
        "pull_image",
        cri.PullImageRequest(image=cri.ImageSpec(image="a b")),
        InvalidArgumentError,
        "invalid image reference",
    ),
    (
        "pull-id",
        "pull_image",
        cri.PullImageRequest(image=cri.ImageSpec(image="sha256:" + "a" * 64)),
        InvalidArgumentError,
        "image id",
    ),
    ("status-empty", "image_status", cri.ImageStatusRequest(), InvalidArgumentError, "image.image"),
    ("rmi-empty", "remove_image", cri.RemoveImageRequest(), InvalidArgumentError, "image.image"),
    (
        "images-garbage",
        "list_images",
        cri.ListImagesRequest(filter=cri.ImageFilter(image=cri.ImageSpec(image="::"))),
        InvalidArgumentError,
        "invalid image reference",
    ),
]


@pytest.mark.parametrize(
    ("method", "request_message", "error", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input(
    fake_endpoint: FakeEndpoint,
    method: str,
    request_message: Any,
    error: type[CRIError],
    fragment: str,
) -> None:
    call: Callable[[Any], Any] = getattr(fake_endpoint.client, method)
    with pytest.raises(error) as info:
        call(request_message)
    assert fragment in info.value.message
    # the server is still there, and nothing was left behind
    client: CRIClient = fake_endpoint.client
    assert client.version().runtime_name == "pycri"
    assert list(client.list_pod_sandbox().items) == []
    assert list(client.list_containers().containers) == []


def test_garbage_bytes_do_not_crash_the_server(fake_endpoint: FakeEndpoint) -> None:
    import grpc

    with grpc.insecure_channel(fake_endpoint.server.endpoint.grpc_target) as channel:
        raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/runtime.v1.RuntimeService/RunPodSandbox"
        )
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff\xff garbage", timeout=5)
        assert info.value.code() == grpc.StatusCode.INTERNAL
    assert fake_endpoint.client.version().runtime_name == "pycri"
