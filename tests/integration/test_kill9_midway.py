"""kill -9 of pycri-server in the middle of create, start and stop, then a restart.

Whatever the engine got done before the kill is visible afterwards through
the CRI (adopted), removable through the CRI (cleaned up), and nothing the
shim created in the engine is missing from the CRI lists (never lost track
of). Shims join by registration; the engine-side count is known for the
docker and nerdctl shims.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.testing import engine_shims, require_real
from pycri.testing.server_process import ServerProcess

pytestmark = pytest.mark.real

IMAGE = "docker.io/library/busybox:latest"
KIND_LABEL = "io.kubernetes.docker.type"


def engine_ids(shim: str, run_id: str) -> set[str] | None:
    """Ids of the engine containers this run created, straight from the engine."""
    label = f"label=pycri.kill9={run_id}"
    if shim == "docker":
        command = ["docker", "ps", "-a", "--no-trunc", "-q", "--filter", label]
    elif shim == "nerdctl":
        command = ["nerdctl", "--namespace", "pycri", "ps", "-a", "--no-trunc", "-q",
                   "--filter", label]  # fmt: skip
    else:
        return None
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    return set(out.split())


@pytest.fixture(params=engine_shims())
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    shim = str(request.param)
    binary = {"docker": "docker", "nerdctl": "nerdctl"}.get(shim)
    require_real(binary is None or shutil.which(binary) is not None, f"{binary} is not installed")
    server = ServerProcess(shim, tmp_path)
    yield server
    server.stop()


POD_NAME = "victim-deployment-7d9f8b6c5d-x2k4p"


def pod_config(run_id: str, log_dir: Path) -> cri.PodSandboxConfig:
    return cri.PodSandboxConfig(
        # Kubernetes-shaped: over nerdctl's 76-character names, so the engine name is mapped
        metadata=cri.PodSandboxMetadata(name=POD_NAME, namespace="kube-system", uid=run_id),
        labels={"pycri.kill9": run_id},
        log_directory=str(log_dir),
        linux=cri.LinuxPodSandboxConfig(),
    )


def container_config(run_id: str) -> cri.ContainerConfig:
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="app"),
        image=cri.ImageSpec(image=IMAGE),
        command=["sleep", "3600"],
        labels={"pycri.kill9": run_id},
        log_path="app.log",
        linux=cri.LinuxContainerConfig(),
    )


def kill_during(server: ServerProcess, operation: Callable[[], object], delay: float) -> None:
    """Run ``operation`` and kill -9 the server ``delay`` seconds into it."""
    thread = threading.Thread(target=lambda: _swallow(operation), daemon=True)
    thread.start()
    time.sleep(delay)
    server.kill9()
    thread.join(timeout=30)


def _swallow(operation: Callable[[], object]) -> None:
    try:
        operation()
    except CRIError:
        pass  # the server died under it: expected


def assert_consistent(client: CRIClient, server: ServerProcess, run_id: str) -> None:
    selector = {"pycri.kill9": run_id}
    pods = client.list_pod_sandbox(
        cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
    ).items
    containers = client.list_containers(
        cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector=selector))
    ).containers
    for pod in pods:
        assert (pod.metadata.name, pod.metadata.uid) == (POD_NAME, run_id)
    for container in containers:
        assert container.pod_sandbox_id in {p.id for p in pods}
        client.container_status(cri.ContainerStatusRequest(container_id=container.id))
    in_engine = engine_ids(server.shim, run_id)
    if in_engine is not None:
        assert in_engine == {p.id for p in pods} | {c.id for c in containers}, (
            "the engine holds objects the CRI does not list (lost track of)"
        )


def remove_everything(client: CRIClient, run_id: str) -> None:
    selector = cri.PodSandboxFilter(label_selector={"pycri.kill9": run_id})
    for pod in client.list_pod_sandbox(cri.ListPodSandboxRequest(filter=selector)).items:
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))


@pytest.mark.parametrize("phase", ["run_pod", "create", "start", "stop"])
def test_kill9_midway(server: ServerProcess, tmp_path: Path, phase: str) -> None:
    run_id = str(uuid.uuid4())  # 36 characters, as Kubernetes uids are
    config = pod_config(run_id, tmp_path / "logs")
    rng = random.Random(run_id)
    client = server.start()
    pod_id = container_id = ""
    try:
        if phase == "run_pod":
            kill_during(server, lambda: client.run_pod_sandbox(
                cri.RunPodSandboxRequest(config=config)), rng.uniform(0.02, 0.2))  # fmt: skip
        else:
            pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
            create = cri.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=container_config(run_id), sandbox_config=config
            )
            if phase == "create":
                kill_during(server, lambda: client.create_container(create),
                            rng.uniform(0.01, 0.1))  # fmt: skip
            else:
                container_id = client.create_container(create).container_id
                start = cri.StartContainerRequest(container_id=container_id)
                if phase == "start":
                    kill_during(server, lambda: client.start_container(start),
                                rng.uniform(0.01, 0.1))  # fmt: skip
                else:
                    client.start_container(start)
                    stop = cri.StopContainerRequest(container_id=container_id, timeout=5)
                    kill_during(server, lambda: client.stop_container(stop),
                                rng.uniform(0.01, 0.1))  # fmt: skip
        client.close()

        client = server.start()
        assert_consistent(client, server, run_id)
        # the interrupted work can be finished or undone through the CRI
        if container_id:
            status = client.container_status(
                cri.ContainerStatusRequest(container_id=container_id)
            ).status
            assert status.state in (cri.CONTAINER_CREATED, cri.CONTAINER_RUNNING,
                                    cri.CONTAINER_EXITED)  # fmt: skip
            client.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=0))
            assert (
                client.container_status(
                    cri.ContainerStatusRequest(container_id=container_id)
                ).status.state
                != cri.CONTAINER_RUNNING
            )
    finally:
        remove_everything(client, run_id)
        in_engine = engine_ids(server.shim, run_id)
        assert not in_engine, f"left in the engine: {json.dumps(sorted(in_engine or []))}"
        client.close()
