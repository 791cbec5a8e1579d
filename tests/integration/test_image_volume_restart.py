"""Image volumes survive a pycri-server restart on both engine shims, and nothing leaks.

Each test builds a shim, creates containers with image mounts, drops the
shim (a restart: nothing in memory survives), removes one container behind
pycri's back (as if the server died between the engine's ``rm`` and the
cleanup), and has a *new* shim remove the pod: every exported tree, mount,
snapshot and lease must go.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_docker_support import environment_ok

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.testing import require_real
from pycri_shims.docker import DockerShim
from pycri_shims.nerdctl import NerdctlShim
from pycri_shims.nerdctl.options import NerdctlOptions
from pycri_shims.nerdctl.testing import Created, TrackingShim, why_unavailable

pytestmark = pytest.mark.real

BUSYBOX = "docker.io/library/busybox:latest"


def _pod(runtime: CRIRuntime) -> tuple[str, cri.PodSandboxConfig]:
    uid = uuid.uuid4().hex
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=f"imgvol-{uid[:8]}", namespace="test", uid=uid),
        linux=cri.LinuxPodSandboxConfig(),
    )
    pod_id = runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    return pod_id, config


def _container(runtime: CRIRuntime, pod_id: str, pod: cri.PodSandboxConfig, name: str) -> str:
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name),
        image=cri.ImageSpec(image=BUSYBOX),
        command=["sleep", "60"],
        mounts=[
            cri.Mount(
                container_path="/mnt/image",
                readonly=True,
                image=cri.ImageSpec(image=BUSYBOX),
                image_sub_path="bin",
            )
        ],
    )
    request = cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod)
    container_id = runtime.create_container(request).container_id
    runtime.start_container(cri.StartContainerRequest(container_id=container_id))
    return container_id


def _restart_scenario(
    make_runtime: Callable[[], CRIRuntime],
    remove_behind_our_back: Callable[[str], None],
    leftovers: Callable[[CRIRuntime], list[str]],
) -> None:
    runtime = make_runtime()
    pod_id, pod = _pod(runtime)
    try:
        kept = _container(runtime, pod_id, pod, "kept")
        lost = _container(runtime, pod_id, pod, "lost")
        runtime.close()  # the server goes away; mounts and trees stay, as they must
        remove_behind_our_back(lost)
        runtime = make_runtime()
        status = runtime.container_status(cri.ContainerStatusRequest(container_id=kept)).status
        [mount] = [m for m in status.mounts if m.image.image]
        assert (mount.image.image, mount.image_sub_path) == (BUSYBOX, "bin")
        result = runtime.exec_sync(
            cri.ExecSyncRequest(container_id=kept, cmd=["/mnt/image/sh", "-c", "echo ok"])
        )
        assert result.stdout == b"ok\n"
    finally:
        try:
            runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
            assert leftovers(runtime) == []
        finally:
            runtime.close()


def test_docker_restart(tmp_path: Path) -> None:
    environment_ok()
    state = str(tmp_path / "state")

    def runtime() -> CRIRuntime:
        return CRIRuntime(DockerShim(state_dir=state))

    def leftovers(rt: CRIRuntime) -> list[str]:
        assert isinstance(rt.shim, DockerShim)
        return rt.shim.containers.volumes.leftovers()

    def docker_rm(container_id: str) -> None:
        subprocess.run(["docker", "rm", "-f", container_id], check=True, capture_output=True)

    _restart_scenario(runtime, docker_rm, leftovers)


@pytest.fixture
def created() -> Iterator[Created]:
    problem = why_unavailable()
    require_real(problem is None, problem or "")
    created = Created()
    yield created
    assert created.left() == {}, "pods or containers (or their pod IPs) were left behind"


def test_nerdctl_restart(tmp_path: Path, created: Created) -> None:
    options = NerdctlOptions(state_dir=str(tmp_path / "state"))

    def runtime() -> CRIRuntime:
        return CRIRuntime(TrackingShim(created, options))

    def leftovers(rt: CRIRuntime) -> list[str]:
        assert isinstance(rt.shim, NerdctlShim)
        return rt.shim.volumes.leftovers()

    def nerdctl_rm(container_id: str) -> None:
        subprocess.run(
            ["nerdctl", "--namespace", options.namespace, "rm", "-f", container_id],
            check=True,
            capture_output=True,
        )

    _restart_scenario(runtime, nerdctl_rm, leftovers)
