"""Core rules (pycri.core.CRIRuntime) that every shim gets for free, shown on the fake."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from pycri_shims.fake import FakeShim


@pytest.fixture
def runtime() -> Iterator[CRIRuntime]:
    runtime = CRIRuntime(FakeShim())
    yield runtime
    runtime.close()


def pod_config(name: str = "p", **labels: str) -> cri.PodSandboxConfig:
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace="ns", uid=f"uid-{name}"),
        labels=labels,
    )


def run_pod(runtime: CRIRuntime, name: str = "p") -> str:
    return runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod_config(name))).pod_sandbox_id


def create(runtime: CRIRuntime, pod_id: str, name: str = "c", start: bool = True) -> str:
    container_id = runtime.create_container(
        cri.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name=name),
                image=cri.ImageSpec(image="busybox"),
                command=["sleep", "60"],
            ),
        )
    ).container_id
    if start:
        runtime.start_container(cri.StartContainerRequest(container_id=container_id))
    return container_id


def state(runtime: CRIRuntime, container_id: str) -> int:
    request = cri.ContainerStatusRequest(container_id=container_id)
    return runtime.container_status(request).status.state


def test_version_names_pycri_and_the_shim(runtime: CRIRuntime) -> None:
    version = runtime.version(cri.VersionRequest())
    assert version.runtime_name == "pycri"
    assert version.runtime_api_version == "v1"
    assert "fake shim" in version.runtime_version


def test_id_prefix_lookup_and_ambiguity(runtime: CRIRuntime) -> None:
    pod_id = run_pod(runtime)
    status = runtime.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id[:8]))
    assert status.status.id == pod_id
    ids = [run_pod(runtime, f"p{i}") for i in range(40)]
    first_chars = [i[0] for i in [*ids, pod_id]]
    shared = max(set(first_chars), key=first_chars.count)  # 41 ids over 16 digits
    with pytest.raises(InvalidArgumentError, match="ambiguous"):
        runtime.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=shared))


def test_concurrent_creates_of_one_name_yield_one_pod(runtime: CRIRuntime) -> None:
    results: list[str] = []
    errors: list[Exception] = []

    def attempt() -> None:
        try:
            results.append(run_pod(runtime, "race"))
        except AlreadyExistsError as err:
            errors.append(err)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1
    assert len(errors) == 7
    assert len(runtime.list_pod_sandbox(cri.ListPodSandboxRequest()).items) == 1


def test_stop_pod_stops_its_containers(runtime: CRIRuntime) -> None:
    pod_id = run_pod(runtime)
    container_id = create(runtime, pod_id)
    runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    assert state(runtime, container_id) == cri.CONTAINER_EXITED


def test_remove_running_container_stops_it_first(runtime: CRIRuntime) -> None:
    pod_id = run_pod(runtime)
    container_id = create(runtime, pod_id)
    runtime.remove_container(cri.RemoveContainerRequest(container_id=container_id))
    with pytest.raises(NotFoundError):
        state(runtime, container_id)


def test_same_name_allowed_again_after_removal_and_for_next_attempt(runtime: CRIRuntime) -> None:
    pod_id = run_pod(runtime)
    first = create(runtime, pod_id, "c", start=False)
    with pytest.raises(AlreadyExistsError):
        create(runtime, pod_id, "c", start=False)
    runtime.remove_container(cri.RemoveContainerRequest(container_id=first))
    create(runtime, pod_id, "c", start=False)


def test_events_are_published(runtime: CRIRuntime) -> None:
    subscription = runtime.events.subscribe()
    pod_id = run_pod(runtime)
    container_id = create(runtime, pod_id)
    runtime.remove_container(cri.RemoveContainerRequest(container_id=container_id))
    seen = []
    for event in subscription.events(poll=0.1):
        if event is None:
            break
        seen.append((event.container_id, event.container_event_type))
    subscription.close()
    assert seen == [
        (container_id, cri.CONTAINER_CREATED_EVENT),
        (container_id, cri.CONTAINER_STARTED_EVENT),
        (container_id, cri.CONTAINER_STOPPED_EVENT),
        (container_id, cri.CONTAINER_DELETED_EVENT),
    ]


def test_errors_carry_the_rpc_name_and_faults_apply(runtime: CRIRuntime) -> None:
    shim = runtime.shim
    assert isinstance(shim, FakeShim)
    shim.faults.fail_next("ListContainers", grpc.StatusCode.UNAVAILABLE, "engine hiccup")
    with pytest.raises(UnavailableError) as info:
        runtime.list_containers(cri.ListContainersRequest())
    assert info.value.rpc == "ListContainers"
    assert "engine hiccup" in str(info.value)
    assert list(runtime.list_containers(cri.ListContainersRequest()).containers) == []


def test_list_images_filter(runtime: CRIRuntime) -> None:
    runtime.pull_image(cri.PullImageRequest(image=cri.ImageSpec(image="nginx:1.25")))
    listed = runtime.list_images(
        cri.ListImagesRequest(filter=cri.ImageFilter(image=cri.ImageSpec(image="nginx:1.25")))
    ).images
    assert [list(i.repo_tags) for i in listed] == [["docker.io/library/nginx:1.25"]]


def test_stream_lists(runtime: CRIRuntime) -> None:
    pod_ids = {run_pod(runtime, f"s{i}") for i in range(3)}
    batches = list(runtime.stream_pod_sandboxes(cri.StreamPodSandboxesRequest(), lambda: True))
    assert {p.id for b in batches for p in b.pod_sandboxes} == pod_ids


def test_unwritable_log_directory_is_a_clear_error(runtime: CRIRuntime, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = pod_config("logs")
    config.log_directory = str(blocker / "pods")
    pod_id = runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    request = cri.CreateContainerRequest(
        pod_sandbox_id=pod_id,
        sandbox_config=config,
        config=cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name="c"),
            image=cri.ImageSpec(image="busybox"),
            log_path="c.log",
        ),
    )
    with pytest.raises(FailedPreconditionError, match=r"cannot write the container log .*c\.log"):
        runtime.create_container(request)
    assert not runtime.list_containers(cri.ListContainersRequest()).containers


def test_stream_images_is_its_own_rpc(runtime: CRIRuntime) -> None:
    """A fault meant for ListImages must not hit StreamImages (it once called list_images)."""
    shim = runtime.shim
    assert isinstance(shim, FakeShim)
    shim.faults.fail_next("ListImages", grpc.StatusCode.UNAVAILABLE, "only ListImages")
    batches = list(runtime.stream_images(cri.StreamImagesRequest(), lambda: True))
    assert sum(len(b.images) for b in batches) >= 1
    with pytest.raises(UnavailableError):
        runtime.list_images(cri.ListImagesRequest())
