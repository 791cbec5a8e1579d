"""An engine refusing a value of the request answers INVALID_ARGUMENT with the engine's words.

Real bad values, sent through core to each engine shim (docs/design.md's error
table), and a failure of the OCI runtime as the control that must not
become INVALID_ARGUMENT.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.errors import CRIError
from pycri.registry import load_shim
from pycri.shim import Shim
from pycri.testing import engine_shims, require_shim

pytestmark = pytest.mark.real

BUSYBOX = "docker.io/library/busybox:latest"
Mutate = Callable[[cri.ContainerConfig], object]


@pytest.fixture(scope="module", params=engine_shims())
def shim(request: pytest.FixtureRequest) -> Iterator[Shim]:
    require_shim(request.param)
    if request.param == "nerdctl":
        from pycri_shims.nerdctl.testing import Created, TrackingShim

        created = Created()
        tracking = TrackingShim(created)
        yield tracking
        tracking.close()
        assert created.left() == {}, "pods or containers were left behind"
        return
    loaded = load_shim(request.param)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def runtime(shim: Shim) -> CRIRuntime:
    return CRIRuntime(shim)


@pytest.fixture
def pod(runtime: CRIRuntime, tmp_path: Path) -> Iterator[tuple[str, cri.PodSandboxConfig]]:
    uid = uuid.uuid4().hex
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=f"refuse-{uid[:8]}", namespace="refusals", uid=uid),
        log_directory=str(tmp_path / "logs"),
    )
    pod_id = runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    yield pod_id, config
    runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def first_error(
    runtime: CRIRuntime, pod: tuple[str, cri.PodSandboxConfig], mutate: Mutate
) -> CRIError:
    """The error CreateContainer or StartContainer answers (engines refuse at either)."""
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="app"),
        image=cri.ImageSpec(image=BUSYBOX),
        command=["sleep", "30"],
        log_path="app.log",
    )
    mutate(config)
    try:
        request = cri.CreateContainerRequest(
            pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1]
        )
        container_id = runtime.create_container(request).container_id
        runtime.start_container(cri.StartContainerRequest(container_id=container_id))
    except CRIError as err:
        return err
    raise AssertionError("the engine took it")


def _seccomp_missing(config: cri.ContainerConfig) -> None:
    seccomp = config.linux.security_context.seccomp
    seccomp.profile_type = cri.SecurityProfile.Localhost
    seccomp.localhost_ref = "/nonexistent/pycri-profile.json"


REFUSED: dict[str, tuple[Mutate, str]] = {
    # (what the request carries, a word of the engine's message that must reach the client)
    "negative memory limit": (
        lambda c: setattr(c.linux.resources, "memory_limit_in_bytes", -5),
        "memory",
    ),
    "oom_score_adj out of range": (
        lambda c: setattr(c.linux.resources, "oom_score_adj", 5000),
        "oom score adj",
    ),
    "user missing from the image": (
        lambda c: setattr(c.linux.security_context, "run_as_username", "nosuchuser"),
        "user",
    ),
    "seccomp profile missing": (_seccomp_missing, "/nonexistent/pycri-profile.json"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_value_is_invalid_argument(
    runtime: CRIRuntime, pod: tuple[str, cri.PodSandboxConfig], case: str
) -> None:
    mutate, word = REFUSED[case]
    err = first_error(runtime, pod, mutate)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT, err
    assert word.lower() in err.message.lower(), err.message


def test_a_runtime_failure_is_not_invalid_argument(runtime: CRIRuntime, tmp_path: Path) -> None:
    """runc failing to apply a sysctl is the engine failing (containerd's CRI: UNKNOWN)."""
    uid = uuid.uuid4().hex
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=f"refuse-{uid[:8]}", namespace="refusals", uid=uid),
        log_directory=str(tmp_path / "logs"),
    )
    config.linux.sysctls["net.ipv4.ip_forward"] = "not-a-number"
    try:
        pod_id = runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    except CRIError as err:
        failure = err
    else:
        runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        raise AssertionError("the engine started a pod with a sysctl it cannot write")
    assert failure.code != grpc.StatusCode.INVALID_ARGUMENT, failure
    assert "ip_forward" in failure.message
