"""One pycri-server serving the docker and nerdctl shims: a pod on each real handler."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.testing import require_shim

pytestmark = pytest.mark.real


def test_a_pod_on_each_real_handler(tmp_path: Path) -> None:
    for name in ("docker", "nerdctl"):
        require_shim(name)
    sock = tmp_path / "cri.sock"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "pycri.server.main", "--shim", "docker", "--shim", "nerdctl",
         "--default-handler", "docker", "--listen", f"unix://{sock}"],
        stdout=log, stderr=log,
    )  # fmt: skip
    run = uuid.uuid4().hex[:10]
    pods: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with CRIClient(f"unix://{sock}", timeout=120) as client:
            for handler in ("docker", "nerdctl"):
                config = cri.PodSandboxConfig(
                    metadata=cri.PodSandboxMetadata(name=handler, namespace="h", uid=run + handler),
                    log_directory=str(tmp_path / handler),
                    linux=cri.LinuxPodSandboxConfig(),
                )
                pod_id = client.run_pod_sandbox(
                    cri.RunPodSandboxRequest(config=config, runtime_handler=handler)
                ).pod_sandbox_id
                pods[handler] = pod_id
                container_id = client.create_container(
                    cri.CreateContainerRequest(
                        pod_sandbox_id=pod_id,
                        sandbox_config=config,
                        config=cri.ContainerConfig(
                            metadata=cri.ContainerMetadata(name="app"),
                            image=cri.ImageSpec(image="docker.io/library/busybox:latest"),
                            command=["sleep", "3600"],
                            log_path="app.log",
                        ),
                    )
                ).container_id
                client.start_container(cri.StartContainerRequest(container_id=container_id))
                result = client.exec_sync(
                    cri.ExecSyncRequest(
                        container_id=container_id, cmd=["echo", handler], timeout=30
                    )
                )
                assert result.stdout == f"{handler}\n".encode()
            for handler, pod_id in pods.items():
                status = client.pod_sandbox_status(
                    cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
                ).status
                assert status.runtime_handler == handler
                assert status.state == cri.SANDBOX_READY
            listed = {p.id: p.runtime_handler for p in client.list_pod_sandbox().items}
            assert {listed[i] for i in pods.values()} == {"docker", "nerdctl"}
            for pod_id in pods.values():
                client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
            assert not {p.id for p in client.list_pod_sandbox().items} & set(pods.values())
    finally:
        if server.poll() is None and pods:  # a failure above must not leave pods behind
            with CRIClient(f"unix://{sock}", timeout=120) as client:
                for pod_id in pods.values():
                    client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        server.terminate()
        server.wait(timeout=60)
        log.close()
