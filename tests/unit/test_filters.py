from __future__ import annotations

from pycri.api import api_pb2 as cri
from pycri.core.filters import filter_containers, filter_images, filter_pod_sandboxes


def pod(pid: str, state: int, **labels: str) -> cri.PodSandbox:
    return cri.PodSandbox(id=pid, state=state, labels=labels)  # type: ignore[arg-type]


def test_pod_filters() -> None:
    pods = [pod("abc1", cri.SANDBOX_READY, app="a"), pod("abd2", cri.SANDBOX_NOTREADY, app="b")]

    def ids(f: cri.PodSandboxFilter | None) -> list[str]:
        return [p.id for p in filter_pod_sandboxes(pods, f)]

    assert ids(None) == ["abc1", "abd2"]
    assert ids(cri.PodSandboxFilter(id="abc")) == ["abc1"]
    assert ids(cri.PodSandboxFilter(state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY))) == [
        "abc1"
    ]
    # state READY is 0: an explicit state filter must still apply
    notready = cri.PodSandboxStateValue(state=cri.SANDBOX_NOTREADY)
    assert ids(cri.PodSandboxFilter(state=notready)) == ["abd2"]
    assert ids(cri.PodSandboxFilter(label_selector={"app": "b"})) == ["abd2"]
    assert ids(cri.PodSandboxFilter(label_selector={"app": "c"})) == []


def test_container_filters() -> None:
    containers = [
        cri.Container(id="c1", pod_sandbox_id="p1", state=cri.CONTAINER_CREATED),
        cri.Container(id="c2", pod_sandbox_id="p2", state=cri.CONTAINER_RUNNING, labels={"x": "1"}),
    ]

    def ids(f: cri.ContainerFilter) -> list[str]:
        return [c.id for c in filter_containers(containers, f)]

    assert ids(cri.ContainerFilter(pod_sandbox_id="p2")) == ["c2"]
    created = cri.ContainerStateValue(state=cri.CONTAINER_CREATED)
    assert ids(cri.ContainerFilter(state=created)) == ["c1"]
    assert ids(cri.ContainerFilter(label_selector={"x": "1"})) == ["c2"]


def test_image_filter_by_tag_digest_and_id() -> None:
    image = cri.Image(
        id="sha256:" + "ab" * 32,
        repo_tags=["docker.io/library/busybox:latest"],
        repo_digests=["docker.io/library/busybox@sha256:" + "cd" * 32],
    )
    assert filter_images([image], "docker.io/library/busybox:latest") == [image]
    assert filter_images([image], "docker.io/library/busybox@sha256:" + "cd" * 32) == [image]
    assert filter_images([image], "abababababab") == [image]
    assert filter_images([image], "abab") == []
    assert filter_images([image], "docker.io/library/other:latest") == []
