"""spec.runtimeClassName picks the runtime handler: pods move between shims of one server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.router import HandlerRouter
from pycri.core.runtime import CRIRuntime
from pycri.kubelet import Kubelet
from pycri.server.server import CRIServer
from pycri_shims.fake import FakeShim


def pod(runtime_class: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: default}}
spec:
  runtimeClassName: {runtime_class}
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
"""


@contextmanager
def node(
    tmp_path: Path, default: str, runtime_handler: str = ""
) -> Iterator[tuple[dict[str, FakeShim], CRIClient, Kubelet]]:
    """A server with two fake handlers, and a kubelet on it."""
    fakes = {"docker": FakeShim(), "containerd": FakeShim()}
    runtime = CRIRuntime(HandlerRouter(fakes, default=default))
    with (
        CRIServer(runtime, f"unix://{tmp_path / 'cri.sock'}") as server,
        CRIClient(server.address) as client,
    ):
        yield (
            fakes,
            client,
            Kubelet(
                client,
                manifest_dir=tmp_path / "manifests",
                root_dir=tmp_path / "root",
                log_root=tmp_path / "logs",
                node_name="n1",
                runtime_handler=runtime_handler,
            ),
        )
    runtime.close()


def test_pod_moves_to_another_handler_when_its_runtime_class_changes(tmp_path: Path) -> None:
    with node(tmp_path, default="docker") as (fakes, client, kubelet):

        def handlers() -> list[str]:
            return [p.runtime_handler for p in client.list_pod_sandbox().items]

        def settle(expected: list[str]) -> None:
            deadline = time.monotonic() + 10
            while handlers() != expected or kubelet.pod_status("web", "default").phase != "Running":
                assert time.monotonic() < deadline, handlers()
                kubelet.sync_once()
                time.sleep(0.05)

        kubelet.apply(pod("docker"))
        settle(["docker"])
        kubelet.apply(pod("containerd"))
        settle(["containerd"])
        assert not fakes["docker"].list_pod_sandboxes(None)
        assert [c.state for c in fakes["containerd"].list_containers(None)] == [
            cri.CONTAINER_RUNNING
        ]
        kubelet.delete("web", "default")


def test_move_runs_the_same_manifest_on_another_handler(tmp_path: Path) -> None:
    with node(tmp_path, default="containerd", runtime_handler="docker") as (_, client, kubelet):
        kubelet.apply(pod("").replace("  runtimeClassName: \n", ""))

        def running_on(handler: str) -> bool:
            kubelet.sync_once()
            pods = client.list_pod_sandbox().items
            ready = [p.runtime_handler for p in pods if p.state == cri.SANDBOX_READY]
            return ready == [handler] and kubelet.pod_status("web", "default").phase == "Running"

        deadline = time.monotonic() + 10
        while not running_on("docker"):
            assert time.monotonic() < deadline
        uid = client.list_pod_sandbox().items[0].metadata.uid
        kubelet.move("web", "default", "containerd")
        while not running_on("containerd"):
            assert time.monotonic() < deadline + 10
        ready = [p for p in client.list_pod_sandbox().items if p.state == cri.SANDBOX_READY]
        assert ready[0].metadata.uid == uid  # the same pod, not a new one
        assert ready[0].metadata.attempt == 1
        kubelet.delete("web", "default")
