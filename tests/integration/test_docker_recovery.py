"""No state in memory: kill -9 of pycri-server, and a Docker daemon that goes away and back."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_docker_support import (
    RUN_ID,
    Server,
    SocketProxy,
    container_config,
    docker_client,
    pod_config,
    remove_leftovers,
    scratch_dir,
    wait_for,
)

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.logs import parse_log_line
from pycri.core.runtime import CRIRuntime
from pycri.errors import UnavailableError
from pycri.server.server import CRIServer
from pycri_shims.docker import DockerShim

pytestmark = pytest.mark.real

TICKER = "i=0; while true; do echo n $i; i=$((i+1)); sleep 0.05; done"


@pytest.fixture
def scratch() -> Iterator[Path]:
    sdk = docker_client()
    with scratch_dir() as path:
        try:
            yield path
        finally:
            left = remove_leftovers(sdk)
            sdk.close()
            assert not left, f"containers left behind: {left}"


def numbers(path: Path) -> list[int]:
    if not path.exists():
        return []
    lines = [parse_log_line(raw) for raw in path.read_bytes().splitlines()]
    return [int(ln.message.split()[1]) for ln in lines]


def mine(client: CRIClient) -> tuple[list[cri.PodSandbox], list[cri.Container]]:
    selector = {"pycri.test": f"docker-{RUN_ID}"}
    pods = client.list_pod_sandbox(
        cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
    ).items
    containers = client.list_containers(
        cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector=selector))
    ).containers
    return sorted(pods, key=lambda p: p.id), sorted(containers, key=lambda c: c.id)


def snapshot(client: CRIClient) -> dict[str, Any]:
    """Everything the CRI says about this run's pods and containers."""
    pods, containers = mine(client)
    return {
        "pods": pods,
        "containers": containers,
        "pod_status": [
            client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=p.id)).status
            for p in pods
        ],
        "container_status": [
            client.container_status(cri.ContainerStatusRequest(container_id=c.id)).status
            for c in containers
        ],
    }


def remove_pods(client: CRIClient) -> None:
    for pod in mine(client)[0]:
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))


def test_kill_9_loses_nothing(scratch: Path) -> None:
    server = Server(scratch / "cri.sock").start()
    client = CRIClient(server.address, timeout=60)
    try:
        busy = pod_config("busy", scratch / "logs")
        idle = pod_config("idle", scratch / "logs")
        busy_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=busy)).pod_sandbox_id
        idle_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=idle)).pod_sandbox_id

        def create(name: str, command: list[str]) -> str:
            return client.create_container(
                cri.CreateContainerRequest(
                    pod_sandbox_id=busy_id,
                    config=container_config(name, command),
                    sandbox_config=busy,
                )
            ).container_id

        ticker = create("ticker", ["sh", "-c", TICKER])
        done = create("done", ["sh", "-c", "echo bye; exit 3"])
        create("waiting", ["sleep", "60"])
        for container_id in (ticker, done):
            client.start_container(cri.StartContainerRequest(container_id=container_id))
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=idle_id))
        log = Path(busy.log_directory) / "ticker.log"
        wait_for(lambda: len(numbers(log)) >= 10, 15, "ticker lines")
        wait_for(
            lambda: (
                client.container_status(cri.ContainerStatusRequest(container_id=done)).status.state
                == cri.CONTAINER_EXITED
            ),
            15,
            "the short container to exit",
        )
        before = snapshot(client)
        assert len(before["pods"]) == 2
        assert len(before["containers"]) == 3

        server.kill()
        lines_at_kill = len(numbers(log))
        server.start()
        # The restarted server resumes copying on its own, before any RPC asks.
        wait_for(lambda: len(numbers(log)) > lines_at_kill + 20, 15, "the log to continue")

        after = snapshot(client)
        assert after == before
        states = {c.metadata.name: c.state for c in after["containers"]}
        assert states == {
            "ticker": cri.CONTAINER_RUNNING,
            "done": cri.CONTAINER_EXITED,
            "waiting": cri.CONTAINER_CREATED,
        }

        client.stop_container(cri.StopContainerRequest(container_id=ticker, timeout=0))
        seen = numbers(log)
        assert seen == list(range(len(seen))), "lines lost or written twice"
    finally:
        remove_pods(client)
        client.close()
        server.stop()


# docker-py's unix transport does not close the socket of a refused connect; the one
# call in flight when "the daemon" vanishes leaks one (the shim probes before the rest).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_daemon_down_is_unavailable_then_recovers(scratch: Path) -> None:
    proxy = SocketProxy(scratch / "docker.sock")
    # the server starts while "the daemon" is down, and says so
    shim = DockerShim(docker_host=proxy.url, timeout=10)
    runtime = CRIRuntime(shim)
    server = CRIServer(runtime, f"unix://{scratch / 'cri.sock'}").start()
    client = CRIClient(server.address, timeout=30)
    pod = pod_config("outage", scratch / "logs")
    try:
        assert "engine unreachable" in client.version().runtime_version
        with pytest.raises(UnavailableError, match="not reachable"):
            client.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod))
        proxy.start()
        pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod)).pod_sandbox_id
        ticker = client.create_container(
            cri.CreateContainerRequest(
                pod_sandbox_id=pod_id,
                config=container_config("ticker", ["sh", "-c", TICKER]),
                sandbox_config=pod,
            )
        ).container_id
        client.start_container(cri.StartContainerRequest(container_id=ticker))
        log = Path(pod.log_directory) / "ticker.log"
        wait_for(lambda: len(numbers(log)) >= 10, 15, "ticker lines")

        proxy.stop()
        with pytest.raises(UnavailableError) as caught:
            client.list_pod_sandbox()
        message = caught.value.message
        assert f"Docker daemon at {proxy.url} is not reachable" in message
        assert "start it" in message
        with pytest.raises(UnavailableError):
            client.container_status(cri.ContainerStatusRequest(container_id=ticker))
        conditions = {c.type: c for c in client.status().status.conditions}
        assert conditions["RuntimeReady"].status is False
        assert "not reachable" in conditions["RuntimeReady"].message
        assert "engine unreachable" in client.version().runtime_version

        proxy.start()
        # the same server, no restart: the next calls reach Docker again
        assert [p.id for p in client.list_pod_sandbox().items if p.id == pod_id] == [pod_id]
        conditions = {c.type: c for c in client.status().status.conditions}
        assert conditions["RuntimeReady"].status is True
        lines_now = len(numbers(log))
        wait_for(lambda: len(numbers(log)) > lines_now + 20, 15, "the log to continue")
        client.stop_container(cri.StopContainerRequest(container_id=ticker, timeout=0))
        seen = numbers(log)
        assert seen == list(range(len(seen))), "lines lost or written twice"
        gc.collect()  # let the leaked socket's warning surface here, where it is ignored
    finally:
        if not proxy.path.exists():
            proxy.start()
        remove_pods(client)
        client.close()
        server.stop(grace=1)
        runtime.close()
        proxy.stop()
