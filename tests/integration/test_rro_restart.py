"""Staged recursive read-only mounts across a kill -9 of pycri-server (docker, nerdctl).

A killed server cannot release what it staged. When it starts again it
releases the stagings no created container owns (a container removed
behind its back, or started by someone else), keeps those of containers
still waiting to start, and those still work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.testing import require_real
from pycri.testing.conformance import wait_for
from pycri.testing.server_process import ServerProcess
from pycri.testing.submounts import tree_with_submount

pytestmark = pytest.mark.real

IMAGE = "docker.io/library/busybox:latest"
#: removing a container behind pycri's back, as an operator would
ENGINE_RM = {
    "docker": ["docker", "rm", "-f"],
    "nerdctl": ["nerdctl", "--namespace", "pycri", "rm", "-f"],
}


class Server(ServerProcess):
    """pycri-server with a state directory of its own, whose stagings a test can list."""

    def __init__(self, shim: str, scratch: Path) -> None:
        self.scratch = scratch
        self.state_dir = scratch / "state"
        super().__init__(shim, scratch, {"state_dir": str(self.state_dir)})

    @property
    def staged(self) -> list[str]:
        root = self.state_dir / "rro"
        if self.shim == "nerdctl":
            root = root / "pycri"
        return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.fixture(params=sorted(ENGINE_RM))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    shim = str(request.param)
    require_real(shutil.which(shim) is not None, f"{shim} is not installed")
    require_real(os.geteuid() == 0, "staging mounts needs root")
    scratch = Path(tempfile.mkdtemp(prefix="pycri-rro-"))
    server = Server(shim, scratch)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _create(client: CRIClient, pod_id: str, pod: cri.PodSandboxConfig, mount: cri.Mount) -> str:
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=f"c-{uuid.uuid4().hex[:8]}"),
        image=cri.ImageSpec(image=IMAGE),
        command=["sleep", "300"],
        mounts=[mount],
    )
    request = cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod)
    return client.create_container(request).container_id


def test_orphans_are_released_at_restart(server: Server) -> None:
    with tree_with_submount(server.scratch / "host") as tree:
        client = server.start()
        uid = uuid.uuid4().hex
        pod = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=f"rro-{uid[:8]}", namespace="test", uid=uid)
        )
        pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod)).pod_sandbox_id
        try:
            mount = cri.Mount(
                host_path=str(tree.path),
                container_path="/data",
                readonly=True,
                recursive_read_only=True,
            )
            kept = _create(client, pod_id, pod, mount)
            orphan = _create(client, pod_id, pod, mount)
            assert tree.copies() == 2
            assert len(server.staged) == 2
            server.kill9()
            subprocess.run([*ENGINE_RM[server.shim], orphan], check=True, capture_output=True)
            client.close()

            client = server.start()
            wait_for(
                lambda: tree.copies() == 1 and len(server.staged) == 1,
                60,
                "the orphaned staging to be released",
            )
            # the created container kept its staging: it starts recursively read-only
            client.start_container(cri.StartContainerRequest(container_id=kept))
            result = client.exec_sync(
                cri.ExecSyncRequest(container_id=kept, cmd=["touch", "/data/sub/x"], timeout=30)
            )
            assert b"Read-only file system" in result.stderr
            assert tree.copies() == 0
            assert server.staged == []
        finally:
            client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
            client.close()
        assert tree.copies() == 0
        assert server.staged == []
