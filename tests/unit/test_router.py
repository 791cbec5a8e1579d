"""Several shims behind one CRIRuntime, chosen per pod by runtime handler (two fakes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.router import HandlerRouter
from pycri.core.runtime import CRIRuntime
from pycri.errors import InvalidArgumentError
from pycri_shims.fake import FakeShim


@pytest.fixture
def fakes() -> dict[str, FakeShim]:
    return {"old": FakeShim(), "new": FakeShim()}


@pytest.fixture
def runtime(fakes: dict[str, FakeShim]) -> Iterator[CRIRuntime]:
    runtime = CRIRuntime(HandlerRouter(fakes, default="old"))
    yield runtime
    runtime.close()


def run_pod(runtime: CRIRuntime, name: str, handler: str = "") -> str:
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace="ns", uid=f"u-{name}")
    )
    request = cri.RunPodSandboxRequest(config=config, runtime_handler=handler)
    return runtime.run_pod_sandbox(request).pod_sandbox_id


def test_pods_go_to_their_handler(runtime: CRIRuntime, fakes: dict[str, FakeShim]) -> None:
    default_pod = run_pod(runtime, "a")
    new_pod = run_pod(runtime, "b", "new")
    assert [p.id for p in fakes["old"].list_pod_sandboxes(None)] == [default_pod]
    assert [p.id for p in fakes["new"].list_pod_sandboxes(None)] == [new_pod]

    listed = runtime.list_pod_sandbox(cri.ListPodSandboxRequest()).items
    assert {(p.id, p.runtime_handler) for p in listed} == {(default_pod, "old"), (new_pod, "new")}
    status = runtime.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=new_pod))
    assert status.status.runtime_handler == "new"


def test_containers_follow_their_pod(runtime: CRIRuntime, fakes: dict[str, FakeShim]) -> None:
    pod_id = run_pod(runtime, "p", "new")
    container_id = runtime.create_container(
        cri.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name="c"),
                image=cri.ImageSpec(image="busybox"),
                command=["sleep", "60"],
            ),
        )
    ).container_id
    runtime.start_container(cri.StartContainerRequest(container_id=container_id))
    assert [c.id for c in fakes["new"].list_containers(None)] == [container_id]
    assert not fakes["old"].list_containers(None)
    result = runtime.exec_sync(
        cri.ExecSyncRequest(container_id=container_id, cmd=["echo", "hi"], timeout=5)
    )
    assert result.stdout == b"hi\n"
    runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert not fakes["new"].list_containers(None)


def test_a_restarted_router_finds_owners_again(fakes: dict[str, FakeShim]) -> None:
    first = CRIRuntime(HandlerRouter(fakes, default="old"))
    pod_id = run_pod(first, "p", "new")
    second = CRIRuntime(HandlerRouter(fakes, default="old"))  # nothing cached
    status = second.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    assert status.status.runtime_handler == "new"
    first.close()


def test_unknown_handler_names_the_available_ones(runtime: CRIRuntime) -> None:
    with pytest.raises(InvalidArgumentError, match=r"'kata'.*'old', 'new'"):
        run_pod(runtime, "x", "kata")


def test_status_and_config_report_handlers(runtime: CRIRuntime, fakes: dict[str, FakeShim]) -> None:
    status = runtime.status(cri.StatusRequest(verbose=True))
    assert [h.name for h in status.runtime_handlers] == ["", "old", "new"]
    assert {c.type: c.status for c in status.status.conditions} == {
        "RuntimeReady": True,
        "NetworkReady": True,
    }
    fakes["new"].network_ready = False
    conditions = {c.type: c for c in runtime.status(cri.StatusRequest()).status.conditions}
    assert conditions["NetworkReady"].status is False
    assert conditions["NetworkReady"].message.startswith("new: ")
    assert "old shim" not in runtime.version(cri.VersionRequest()).runtime_version


def test_images_are_pulled_everywhere_and_listed_once(
    runtime: CRIRuntime, fakes: dict[str, FakeShim]
) -> None:
    spec = cri.ImageSpec(image="nginx:1.25")
    runtime.pull_image(cri.PullImageRequest(image=spec))
    for fake in fakes.values():
        assert fake.image_status("docker.io/library/nginx:1.25") is not None
    listed = [
        i
        for i in runtime.list_images(cri.ListImagesRequest()).images
        if "nginx" in str(i.repo_tags)
    ]
    assert len(listed) == 1
    runtime.remove_image(cri.RemoveImageRequest(image=spec))
    assert all(f.image_status("docker.io/library/nginx:1.25") is None for f in fakes.values())
