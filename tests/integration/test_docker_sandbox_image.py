"""The sandbox (pause) image on the Docker shim: pulled on demand, pinned, removable.

The shim under test runs with a pause image of this run's own: the local
pause committed with a label (so its id is not registry.k8s.io/pause:3.9's,
which RemoveImage must never touch), pushed to the local registry and
removed locally, so every test starts on a node without it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from test_docker_support import (
    BUSYBOX,
    PAUSE,
    REGISTRY,
    RUN_ID,
    delete_from_registry,
    docker_client,
    pod_config,
    remove_leftovers,
    scratch_dir,
)

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.runtime import CRIRuntime
from pycri.errors import CRIError, FailedPreconditionError
from pycri.server.server import CRIServer
from pycri_shims.docker import DockerShim

pytestmark = pytest.mark.real

REPOSITORY = "pycri-test/docker-pause"
#: marks every image this module makes, so that even a nameless leftover is found
MARK = "io.pycri.test.pause"


@pytest.fixture(scope="module")
def sdk() -> Iterator[Any]:
    client = docker_client()
    yield client
    client.close()


def drop_local(sdk: Any) -> None:
    """Remove this run's pause images, named or not (once no container uses them)."""
    for image in sdk.api.images(all=True, filters={"label": f"{MARK}={RUN_ID}"}):
        try:
            sdk.api.remove_image(image["Id"], force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture(scope="module")
def registry_pause(sdk: Any) -> Iterator[str]:
    repository, tag = f"{REGISTRY}/{REPOSITORY}", RUN_ID
    holder = sdk.api.create_container(PAUSE, name=f"pycri-pause-src-{RUN_ID}")
    try:
        sdk.api.commit(holder["Id"], repository, tag, conf={"Labels": {MARK: RUN_ID}})
    finally:
        sdk.api.remove_container(holder["Id"], force=True)
    try:
        for event in sdk.api.push(repository, tag, stream=True, decode=True):
            assert "error" not in event, event
        drop_local(sdk)
        yield f"{repository}:{tag}"
    finally:
        delete_from_registry(REPOSITORY, tag)
        drop_local(sdk)


@dataclass
class Node:
    """A pycri server on a Docker shim whose pause image is ``pause``."""

    shim: DockerShim
    client: CRIClient
    pause: str
    scratch: Path
    pods: list[str] = field(default_factory=list)

    def run_pod(self) -> str:
        config = pod_config("pause", self.scratch / "logs")
        pod_id = self.client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        self.pods.append(pod_id)
        return pod_id

    def ready(self, pod_id: str) -> bool:
        request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
        return self.client.pod_sandbox_status(request).status.state == cri.SANDBOX_READY

    def image(self, ref: str) -> cri.Image | None:
        found = self.client.image_status(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref)))
        return found.image if found.HasField("image") else None

    def listed(self) -> list[cri.Image]:
        return list(self.client.list_images().images)

    def count_pulls(self, delay: float = 0.0) -> list[str]:
        """Record every pause image pull from now on, each ``delay`` s longer."""
        pulls: list[str] = []
        sandboxes = self.shim.sandboxes
        pull = sandboxes._pull

        def counted(ref: str) -> object:
            pulls.append(ref)
            threading.Event().wait(delay)  # so that concurrent calls surely overlap it
            return pull(ref)

        sandboxes._pull = counted
        return pulls


@contextmanager
def docker_node(sdk: Any, pause: str) -> Iterator[Node]:
    shim = DockerShim(pause_image=pause)
    runtime = CRIRuntime(shim)
    with scratch_dir() as scratch:
        server = CRIServer(runtime, f"unix://{scratch / 'cri.sock'}").start()
        client = CRIClient(server.address, timeout=120)
        node = Node(shim, client, pause, scratch)
        try:
            yield node
            for pod_id in node.pods:
                client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
                client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        finally:
            client.close()
            server.stop(grace=1)
            runtime.close()
            left = remove_leftovers(sdk)
            drop_local(sdk)
        assert not left, f"containers left behind: {left}"


@pytest.fixture
def node(sdk: Any, registry_pause: str) -> Iterator[Node]:
    assert not sdk.api.images(name=registry_pause), "the pause image is already local"
    with docker_node(sdk, registry_pause) as node:
        yield node


def run_together(node: Node, count: int) -> tuple[list[str], list[CRIError]]:
    pods: list[str] = []
    errors: list[CRIError] = []

    def run() -> None:
        try:
            pods.append(node.run_pod())
        except CRIError as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return pods, errors


def test_parallel_pods_pull_a_missing_pause_image_once(node: Node) -> None:
    assert node.image(node.pause) is None
    pulls = node.count_pulls(delay=1.0)
    pods, errors = run_together(node, 6)
    assert errors == []
    assert len(pods) == 6
    assert pulls == [node.pause]
    assert all(node.ready(pod_id) for pod_id in pods)


def test_the_sandbox_image_is_pinned(node: Node) -> None:
    node.run_pod()
    pinned = {tag: i.pinned for i in node.listed() for tag in i.repo_tags}
    assert pinned[node.pause] is True
    assert pinned[BUSYBOX] is False
    by_ref = node.image(node.pause)
    assert by_ref is not None
    assert by_ref.pinned
    by_id = node.image(by_ref.id)
    assert by_id is not None
    assert by_id.pinned
    busybox = node.image(BUSYBOX)
    assert busybox is not None
    assert not busybox.pinned


def test_removing_the_pause_image_under_a_running_pod(node: Node) -> None:
    """containerd's CRI: the image goes, the pod keeps running, the next pod pulls it again."""
    first = node.run_pod()
    image = node.image(node.pause)
    assert image is not None
    pulls = node.count_pulls()
    node.client.remove_image(cri.RemoveImageRequest(image=cri.ImageSpec(image=node.pause)))
    assert node.image(node.pause) is None
    assert node.image(image.id) is None
    assert image.id not in {i.id for i in node.listed()}
    assert node.ready(first)
    # what Docker does underneath: the running pause keeps its image, without a name
    kept = node.shim.connection.api.inspect_image(image.id)
    assert not kept.get("RepoTags")

    second = node.run_pod()
    assert pulls == [node.pause]
    assert node.ready(first)
    assert node.ready(second)
    again = node.image(node.pause)
    assert again is not None
    assert again.pinned
    assert again.id == image.id


def test_an_unpullable_pause_image_fails_every_waiting_pod_with_one_pull(
    sdk: Any, registry_pause: str
) -> None:
    missing = f"{REGISTRY}/{REPOSITORY}:missing-{RUN_ID}"
    with docker_node(sdk, missing) as node:
        pulls = node.count_pulls(delay=1.0)
        pods, errors = run_together(node, 4)
        assert pods == []
        assert len(errors) == 4
        for err in errors:
            assert isinstance(err, FailedPreconditionError), err
            assert missing in err.message
            assert "pause_image" in err.message
        assert pulls == [missing]
