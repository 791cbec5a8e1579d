"""The sandbox (pause) image on the nerdctl shim: pulled on demand, pinned, removable.

Each test runs on a fresh node: a containerd namespace of its own, empty at
first and removed afterwards, whose pause image is a tag of this run's own
in the local registry (pushed from the pycri namespace's pause image).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.runtime import CRIRuntime
from pycri.errors import CRIError, FailedPreconditionError
from pycri.server.server import CRIServer
from pycri.testing import require_real
from pycri.testing.conformance import wait_for
from pycri_shims.nerdctl import NerdctlOptions
from pycri_shims.nerdctl.testing import Created, TrackingShim, nerdctl, why_unavailable

pytestmark = pytest.mark.real

REGISTRY = "127.0.0.1:5000"
RUN_ID = uuid.uuid4().hex[:8]
REPOSITORY = "pycri-test/pause"
LOCAL_PAUSE = "registry.k8s.io/pause:3.9"
#: another image the registry serves (setup-runtimes.sh pushes it)
REGISTRY_BUSYBOX = f"{REGISTRY}/pycri/busybox:latest"
_MANIFESTS = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def delete_from_registry(repository: str, tag: str) -> None:
    """Drop a tag this run pushed (the registry runs with storage.delete enabled)."""
    url = f"http://{REGISTRY}/v2/{repository}/manifests"
    head = urllib.request.Request(f"{url}/{tag}", method="HEAD", headers={"Accept": _MANIFESTS})
    try:
        with urllib.request.urlopen(head, timeout=10) as answer:
            digest = answer.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return
        raise
    urllib.request.urlopen(
        urllib.request.Request(f"{url}/{digest}", method="DELETE"), timeout=10
    ).close()


@pytest.fixture(scope="module")
def registry_pause() -> Iterator[str]:
    """This run's pause image in the local registry, and in no containerd namespace."""
    problem = why_unavailable()
    require_real(problem is None, problem or "")
    ref = f"{REGISTRY}/{REPOSITORY}:{RUN_ID}"
    nerdctl("tag", LOCAL_PAUSE, ref)
    try:
        nerdctl("--insecure-registry", "push", "--quiet", ref, timeout=120)
    finally:
        nerdctl("rmi", ref)  # the name only: registry.k8s.io/pause:3.9 stays
    try:
        yield ref
    finally:
        delete_from_registry(REPOSITORY, RUN_ID)


@dataclass
class Node:
    """A pycri server on the nerdctl shim over a containerd namespace of its own."""

    shim: TrackingShim
    client: CRIClient
    pause: str
    logs: Path
    pods: list[str] = field(default_factory=list)

    def config(self) -> cri.PodSandboxConfig:
        uid = uuid.uuid4().hex
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=f"si-{uid[:8]}", namespace="pause", uid=uid),
            log_directory=str(self.logs / uid),
            labels={"pycri.test": "sandbox-image"},
        )

    def run_pod(self) -> str:
        request = cri.RunPodSandboxRequest(config=self.config())
        pod_id = self.client.run_pod_sandbox(request).pod_sandbox_id
        self.pods.append(pod_id)
        return pod_id

    def ready(self, pod_id: str) -> bool:
        request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
        return self.client.pod_sandbox_status(request).status.state == cri.SANDBOX_READY

    def image(self, ref: str) -> cri.Image | None:
        request = cri.ImageStatusRequest(image=cri.ImageSpec(image=ref))
        found = self.client.image_status(request)
        return found.image if found.HasField("image") else None

    def listed(self) -> dict[str, cri.Image]:
        """ListImages by tag."""
        return {tag: i for i in self.client.list_images().images for tag in i.repo_tags}

    def count_pulls(self, delay: float = 0.0) -> list[str]:
        """Record every ``nerdctl pull`` the shim starts from now on, each ``delay`` s longer."""
        pulls: list[str] = []
        store = self.shim.images
        pull = store._pull

        def counted(image: str, auth: cri.AuthConfig | None) -> None:
            pulls.append(image)
            time.sleep(delay)  # so that concurrent calls surely overlap the pull
            pull(image, auth)

        store._pull = counted  # type: ignore[method-assign]
        return pulls


@contextmanager
def fresh_node(pause: str, root: Path, ctr: str = "ctr") -> Iterator[Node]:
    namespace = f"pycri-fresh-{uuid.uuid4().hex[:8]}"
    options = NerdctlOptions(namespace=namespace, pause_image=pause, ctr=ctr)
    created = Created()
    shim = TrackingShim(created, options)
    runtime = CRIRuntime(shim)
    server = CRIServer(runtime, f"unix://{root / 'cri.sock'}").start()
    client = CRIClient(server.address, timeout=120)
    node = Node(shim, client, pause, root / "logs")
    try:
        assert not nerdctl("images", "-q", options=options).strip(), "the node is not fresh"
        yield node
        for pod_id in node.pods:
            client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        assert created.left(options) == {}, "pods (or their pod IPs) were left behind"
    finally:
        client.close()
        server.stop(grace=1.0)
        runtime.close()
        # whatever a failure left: containers, images, then the namespace itself
        left = nerdctl("ps", "-a", "-q", "--no-trunc", options=options).split()
        if left:
            nerdctl("rm", "-f", *left, options=options)
        images = nerdctl("images", "--format", "{{.Name}}", options=options).split()
        if images:
            nerdctl("rmi", "-f", *images, options=options)
        nerdctl("namespace", "rm", namespace)


@pytest.fixture
def node(registry_pause: str, tmp_path: Path) -> Iterator[Node]:
    with fresh_node(registry_pause, tmp_path) as node:
        yield node


def test_parallel_pods_on_a_fresh_node_pull_the_pause_image_once(node: Node) -> None:
    assert node.image(node.pause) is None
    pulls = node.count_pulls(delay=1.0)
    results: list[str | CRIError] = []

    def run() -> None:
        try:
            results.append(node.run_pod())
        except CRIError as err:
            results.append(err)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert [r for r in results if isinstance(r, CRIError)] == []
    assert len(results) == 6
    assert pulls == [node.pause]
    assert all(node.ready(pod_id) for pod_id in node.pods)

    # with the image present, a pod costs what the module docstring says: 1 process
    # (core's name check is answered by the container view once it is fresh)
    wait_for(lambda: node.shim.view.fresh, 60, "the container view")
    before = node.shim.runner.counter.snapshot()["RunPodSandbox"]["processes"]
    node.run_pod()
    after = node.shim.runner.counter.snapshot()["RunPodSandbox"]["processes"]
    assert after - before == 1
    assert pulls == [node.pause]


def test_the_sandbox_image_is_pinned(node: Node) -> None:
    node.run_pod()
    node.client.pull_image(cri.PullImageRequest(image=cri.ImageSpec(image=REGISTRY_BUSYBOX)))
    listed = node.listed()
    assert listed[node.pause].pinned
    assert not listed[REGISTRY_BUSYBOX].pinned
    by_ref = node.image(node.pause)
    assert by_ref is not None
    assert by_ref.pinned
    by_id = node.image(by_ref.id)
    assert by_id is not None
    assert by_id.pinned
    by_prefix = node.image(by_ref.id.removeprefix("sha256:")[:12])
    assert by_prefix is not None
    assert by_prefix.pinned
    other = node.image(REGISTRY_BUSYBOX)
    assert other is not None
    assert not other.pinned


def test_removing_the_pause_image_under_a_running_pod(node: Node) -> None:
    """containerd's CRI: the image goes, the pod keeps running, the next pod pulls it again."""
    first = node.run_pod()
    pulls = node.count_pulls()
    node.client.remove_image(cri.RemoveImageRequest(image=cri.ImageSpec(image=node.pause)))
    assert node.image(node.pause) is None
    assert node.pause not in node.listed()
    assert node.ready(first)

    second = node.run_pod()
    assert pulls == [node.pause]
    assert node.ready(second)
    assert node.ready(first)
    assert node.listed()[node.pause].pinned


def test_an_unpullable_pause_image_is_a_clear_failed_precondition(
    registry_pause: str, tmp_path: Path
) -> None:
    missing = f"{REGISTRY}/{REPOSITORY}:missing-{RUN_ID}"
    with fresh_node(missing, tmp_path) as node:
        pulls = node.count_pulls(delay=1.0)
        errors: list[CRIError] = []

        def run() -> None:
            try:
                node.run_pod()
            except CRIError as err:
                errors.append(err)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert len(errors) == 4
        for err in errors:
            assert isinstance(err, FailedPreconditionError), err
            assert missing in err.message
            assert "pause_image" in err.message
        # the calls that failed together shared one pull; a later call tries again
        assert len(pulls) == 1
        with pytest.raises(FailedPreconditionError):
            node.run_pod()
        assert len(pulls) == 2
        assert json.loads(node.shim.info()["nerdctlProcesses"])


def test_without_ctr_removing_a_running_pods_image_says_what_to_install(
    registry_pause: str, tmp_path: Path
) -> None:
    with fresh_node(registry_pause, tmp_path, ctr=str(tmp_path / "no-ctr")) as node:
        pod_id = node.run_pod()
        spec = cri.ImageSpec(image=node.pause)
        with pytest.raises(FailedPreconditionError, match=r"running container.*ctr=PATH"):
            node.client.remove_image(cri.RemoveImageRequest(image=spec))
        assert node.image(node.pause) is not None
        assert node.ready(pod_id)
