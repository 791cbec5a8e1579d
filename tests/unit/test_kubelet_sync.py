"""The whole sync loop against the in-process fake runtime (serve_fake)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pycri.api import api_pb2 as cri
from pycri.kubelet import Kubelet, ManualClock
from pycri.kubelet.model import labels as L
from pycri.kubelet.sync.status import PodStatus
from pycri.testing import FakeEndpoint, serve_fake

NODE = "node-1"


class Node:
    """A Kubelet on a fake runtime, with helpers to drive it."""

    def __init__(self, endpoint: FakeEndpoint, tmp: Path) -> None:
        self.endpoint = endpoint
        self.tmp = tmp
        self.clock = ManualClock()
        self.kubelet = self.new_kubelet()

    def new_kubelet(self) -> Kubelet:
        return Kubelet(
            self.endpoint.client,
            manifest_dir=self.tmp / "manifests",
            root_dir=self.tmp / "root",
            log_root=self.tmp / "logs",
            node_name=NODE,
            clock=self.clock,
            node_ip="192.0.2.10",
        )

    def apply(self, document: dict[str, Any] | str) -> None:
        self.kubelet.apply(document)

    def status(self, name: str, namespace: str = "default") -> PodStatus:
        return self.kubelet.pod_status(name, namespace)

    def sync_until(
        self, check: Callable[[], bool], what: str, timeout: float = 5.0, advance: float = 0.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            report = self.kubelet.sync_once()
            assert not report.errors, report.errors
            if check():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.clock.advance(advance)
            time.sleep(0.02)

    def containers(self, **labels: str) -> list[cri.Container]:
        request = cri.ListContainersRequest(
            filter=cri.ContainerFilter(label_selector={L.NODE: NODE, **labels})
        )
        return list(self.endpoint.client.list_containers(request).containers)

    def sandboxes(self) -> list[cri.PodSandbox]:
        request = cri.ListPodSandboxRequest(
            filter=cri.PodSandboxFilter(label_selector={L.NODE: NODE})
        )
        return list(self.endpoint.client.list_pod_sandbox(request).items)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with serve_fake() as endpoint:
        node = Node(endpoint, tmp_path)
        try:
            yield node
        finally:
            node.kubelet.close()


def pod(
    name: str,
    containers: list[dict[str, Any]],
    *,
    init: list[dict[str, Any]] | None = None,
    grace: int = 1,
    **spec: Any,
) -> dict[str, Any]:
    defaults = {"image": "busybox", "imagePullPolicy": "IfNotPresent"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "containers": [{**defaults, **c} for c in containers],
            **({"initContainers": [{**defaults, **c} for c in init]} if init else {}),
            **spec,
        },
    }


SLEEP = ["sleep", "3600"]


def running(status: PodStatus) -> bool:
    return status.phase == "Running" and all(
        c.state.state == "running" for c in status.container_statuses
    )


def test_init_containers_run_in_order_before_the_app(node: Node) -> None:
    node.apply(
        pod(
            "web",
            [{"name": "app", "command": SLEEP}],
            init=[
                {"name": "first", "command": ["sh", "-c", "echo one; sleep 0.1"]},
                {"name": "second", "command": ["sh", "-c", "echo two"]},
            ],
            volumes=[{"name": "data", "emptyDir": {}}],
        )
    )
    node.sync_until(lambda: running(node.status("web")), "web to run")
    info = node.kubelet.pod("web")
    assert info is not None
    assert info.observed is not None
    by_name = {c.name: c for c in info.observed.containers}
    assert by_name["first"].finished_at <= by_name["second"].started_at
    assert by_name["second"].finished_at <= by_name["app"].started_at
    status = node.status("web")
    assert [s.state.reason for s in status.init_container_statuses] == ["Completed"] * 2
    assert status.ready
    assert status.pod_ip
    assert status.host_ip == "192.0.2.10"
    # logs live where the kubelet puts them
    log = node.tmp / "logs" / f"default_web_{info.uid}" / "first" / "0.log"
    assert log.exists()
    assert b"stdout F one" in log.read_bytes()
    empty_dir = node.tmp / "root/pods" / info.uid / "volumes/kubernetes.io~empty-dir/data"
    assert empty_dir.is_dir()
    assert empty_dir.stat().st_mode & 0o777 == 0o777


def test_a_failing_init_container_fails_a_never_restarting_pod(node: Node) -> None:
    node.apply(
        pod(
            "job",
            [{"name": "app", "command": SLEEP}],
            init=[{"name": "check", "command": ["sh", "-c", "exit 4"]}],
            restartPolicy="Never",
        )
    )
    node.sync_until(lambda: node.status("job").phase == "Failed", "the pod to fail")
    node.kubelet.sync_once()
    (sandbox,) = node.sandboxes()
    assert sandbox.state == cri.SANDBOX_NOTREADY  # a finished pod keeps no sandbox running
    assert [c.metadata.name for c in node.containers()] == ["check"]


def test_crash_loop_back_off_with_a_manual_clock(node: Node) -> None:
    node.apply(pod("crash", [{"name": "app", "command": ["sh", "-c", "echo boom; exit 3"]}]))

    def restarts() -> int:
        return node.status("crash").container_statuses[0].restart_count

    def waiting() -> bool:
        return node.status("crash").container_statuses[0].state.reason == "CrashLoopBackOff"

    def wait_out(delay: int, restarted: int) -> None:
        """No restart until ``delay`` seconds after the last exit, then one."""
        node.sync_until(waiting, f"CrashLoopBackOff before restart {restarted}")
        last = node.status("crash").container_statuses[0].last_state
        assert last is not None
        assert last.exit_code == 3
        assert f"back-off {delay}s" in node.status("crash").container_statuses[0].state.message
        node.clock.advance(last.finished_at + delay - 1 - node.clock.now())
        node.kubelet.sync_once()
        assert restarts() == restarted - 1
        node.clock.advance(1.5)
        node.sync_until(lambda: restarts() == restarted, f"restart {restarted}")

    node.sync_until(lambda: restarts() == 1, "the immediate first restart")
    wait_out(10, 2)
    wait_out(20, 3)
    wait_out(40, 4)
    node.sync_until(lambda: len(node.containers()) == 2, "old instances to be removed")
    assert sorted(c.metadata.attempt for c in node.containers()) == [3, 4]
    # the back-off is written on the container: a new Kubelet computes the same
    node.sync_until(waiting, "the fourth crash")
    fresh = node.new_kubelet()
    state = fresh.pod_status("crash").container_statuses[0].state
    assert (state.reason, "back-off 80s" in state.message) == ("CrashLoopBackOff", True)
    fresh.close()


def test_a_failing_liveness_probe_restarts_the_container(node: Node) -> None:
    probe = {"exec": {"command": ["test", "-e", "/tmp/healthy"]}, "periodSeconds": 5}
    node.apply(
        pod(
            "live",
            [
                {
                    "name": "app",
                    "command": ["sh", "-c", "touch /tmp/healthy; sleep 3600"],
                    "livenessProbe": {**probe, "failureThreshold": 2},
                    "readinessProbe": probe,
                }
            ],
        )
    )
    node.sync_until(lambda: node.status("live").ready, "readiness")
    (app,) = node.containers()
    node.endpoint.client.exec_sync(
        cri.ExecSyncRequest(container_id=app.id, cmd=["rm", "/tmp/healthy"], timeout=5)
    )
    node.sync_until(
        lambda: node.status("live").container_statuses[0].restart_count == 1,
        "a restart after two failed liveness probes",
        advance=5,
    )
    events = [(e.reason, e.message) for e in node.kubelet.pod("live").state.events]  # type: ignore[union-attr]
    assert ("Killing", "Container app failed liveness probe") in events
    assert any(reason == "Unhealthy" and "Liveness" in msg for reason, msg in events)
    node.sync_until(lambda: node.status("live").ready, "readiness of the new container", advance=5)


def test_deletion_stops_with_the_grace_period_and_cleans_up(node: Node) -> None:
    node.apply(
        pod(
            "slow",
            [{"name": "app", "command": ["sh", "-c", "trap 'sleep 60' TERM; sleep 3600"]}],
            grace=30,
            volumes=[{"name": "data", "emptyDir": {}}],
        )
    )
    node.sync_until(lambda: running(node.status("slow")), "slow to run")
    uid = node.kubelet.pod("slow").uid  # type: ignore[union-attr]
    timeouts: list[int] = []
    client = node.endpoint.client
    stop = client.stop_container

    def recording_stop(request: cri.StopContainerRequest, **kwargs: Any) -> Any:
        timeouts.append(request.timeout)
        return stop(request, **kwargs)

    client.stop_container = recording_stop  # type: ignore[assignment]
    started = time.monotonic()
    assert node.kubelet.delete("slow", grace_period=1)
    took = time.monotonic() - started
    assert timeouts == [1]
    assert 0.9 < took < 5
    assert node.sandboxes() == []
    assert node.containers() == []
    assert not (node.tmp / "root/pods" / uid).exists()
    assert not list((node.tmp / "logs").iterdir())
    assert list((node.tmp / "manifests").iterdir()) == []
    assert not node.kubelet.delete("slow")


def test_a_restarted_kubelet_adopts_pods_instead_of_duplicating(node: Node) -> None:
    probe = {"exec": {"command": ["true"]}, "periodSeconds": 60}
    node.apply(pod("web", [{"name": "app", "command": SLEEP, "readinessProbe": probe}]))
    node.sync_until(lambda: node.status("web").ready, "web to be ready")
    before = {(c.id, c.state) for c in node.containers()}
    sandboxes = [s.id for s in node.sandboxes()]
    node.kubelet.close()
    node.kubelet = node.new_kubelet()
    assert node.status("web").ready  # the probe result is adopted from the pod's state file
    for _ in range(3):
        node.kubelet.sync_once()
    assert {(c.id, c.state) for c in node.containers()} == before
    assert [s.id for s in node.sandboxes()] == sandboxes


def test_static_pod_files_add_change_and_remove(node: Node) -> None:
    manifests = node.tmp / "manifests"
    manifests.mkdir()
    path = manifests / "static.yaml"
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: static}\n"
        "spec:\n  terminationGracePeriodSeconds: 1\n"
        "  containers: [{name: c, image: busybox, imagePullPolicy: IfNotPresent, "
        "command: [sleep, '3600']}]\n"
    )
    path.write_text(text)
    node.sync_until(lambda: running(node.status("static")), "the static pod")
    first = node.kubelet.pod("static").uid  # type: ignore[union-attr]
    (manifests / ".hidden.yaml").write_text(text.replace("static", "hidden"))
    path.write_text(text.replace("'3600'", "'7200'"))
    node.sync_until(
        lambda: (
            [s.metadata.uid for s in node.sandboxes()] != [first] and len(node.sandboxes()) == 1
        ),
        "the changed pod to replace the old one",
    )
    assert node.kubelet.pod("hidden") is None  # dotfiles are skipped, as by the kubelet
    second = node.kubelet.pod("static")
    assert second is not None
    assert second.uid != first
    # a broken file keeps its pods: a typo must not kill them
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: static\n")
    report = node.kubelet.sync_once()
    assert report.terminated == []
    assert len(node.sandboxes()) == 1
    path.unlink()
    node.sync_until(lambda: node.sandboxes() == [], "the pod to be removed")
    assert not (node.tmp / "root/pods" / second.uid).exists()


def test_scale_up_and_down(node: Node) -> None:
    node.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "c",
                                "image": "busybox",
                                "imagePullPolicy": "IfNotPresent",
                                "command": SLEEP,
                            }
                        ],
                    },
                },
            },
        }
    )

    def names() -> list[str]:
        return sorted(s.metadata.name for s in node.sandboxes() if s.state == cri.SANDBOX_READY)

    node.sync_until(lambda: names() == ["api-0", "api-1", "api-2"], "three replicas")
    kept = {s.metadata.name: s.id for s in node.sandboxes()}
    assert node.kubelet.scale("api", 1) == "configured"
    node.sync_until(lambda: names() == ["api-0"], "one replica")
    assert node.sandboxes()[0].id == kept["api-0"]
    node.kubelet.scale("api", 2)
    node.sync_until(lambda: names() == ["api-0", "api-1"], "two replicas")
    # deleting a replica brings it back, as a ReplicaSet would
    node.kubelet.delete("api-1")
    node.sync_until(lambda: names() == ["api-0", "api-1"], "the replica to come back")
    assert node.kubelet.delete("api", kind="Deployment")
    assert node.sandboxes() == []
    with pytest.raises(KeyError):
        node.kubelet.scale("api", 1)


def test_image_pull_failures_back_off(tmp_path: Path) -> None:
    with serve_fake() as endpoint:
        node = Node(endpoint, tmp_path)
        endpoint.fake.faults.fail_next("PullImage", grpc.StatusCode.UNAVAILABLE)
        node.apply(pod("pull", [{"name": "app", "image": "nginx:1.25", "command": SLEEP}]))

        def reason() -> str:
            return node.status("pull").container_statuses[0].state.reason

        node.kubelet.sync_once()
        assert reason() == "ErrImagePull"
        node.kubelet.sync_once()
        assert reason() == "ImagePullBackOff"
        node.clock.advance(10)
        node.sync_until(lambda: running(node.status("pull")), "the pull to succeed")
        node.kubelet.close()


def test_runtime_refusals_surface_as_events(node: Node) -> None:
    # the fake's server runs without --allow-privileged: host networking is refused
    node.apply(pod("host", [{"name": "app", "command": SLEEP}], hostNetwork=True))
    node.kubelet.sync_once()
    info = node.kubelet.pod("host")
    assert info is not None
    assert info.state is not None
    assert info.status.phase == "Pending"
    assert [e.reason for e in info.state.events] == ["FailedCreatePodSandBox"]
    assert "PERMISSION_DENIED" in info.state.events[0].message


def test_pods_of_other_nodes_are_left_alone(node: Node) -> None:
    client = node.endpoint.client
    foreign = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="theirs", namespace="default", uid="u-1"),
        labels={L.POD_UID: "u-1", L.NODE: "other-node"},
    )
    pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=foreign)).pod_sandbox_id
    node.kubelet.sync_once()
    status = client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    assert status.status.state == cri.SANDBOX_READY


def test_an_oom_killed_container_is_restarted_and_reported(node: Node) -> None:
    node.apply(pod("oom", [{"name": "app", "command": SLEEP}], restartPolicy="OnFailure"))
    node.sync_until(lambda: running(node.status("oom")), "oom to run")
    (app,) = node.containers()
    node.endpoint.fake.crash(app.id)  # exit 137, reason OOMKilled
    node.sync_until(lambda: running(node.status("oom")), "the restart")
    status = node.status("oom").container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state is not None
    assert (status.last_state.reason, status.last_state.exit_code) == ("OOMKilled", 137)
