"""Core's rules for recursive read-only mounts, and how handlers say they support them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.recursive_readonly import check_recursive_read_only
from pycri.core.router import HandlerRouter
from pycri.core.runtime import CRIRuntime
from pycri.errors import InvalidArgumentError
from pycri.shim import Shim
from pycri_shims.fake import FakeShim

SUPPORTED = cri.RuntimeHandlerFeatures(recursive_read_only_mounts=True)
UNSUPPORTED = cri.RuntimeHandlerFeatures()
PRIVATE, SLAVE, SHARED = (
    cri.PROPAGATION_PRIVATE,
    cri.PROPAGATION_HOST_TO_CONTAINER,
    cri.PROPAGATION_BIDIRECTIONAL,
)


@pytest.mark.parametrize(
    ("recursive", "readonly", "propagation", "features", "error"),
    [
        (True, True, PRIVATE, SUPPORTED, None),
        (True, False, PRIVATE, SUPPORTED, "must also be read-only"),
        (True, True, SLAVE, SUPPORTED, "needs private propagation, got PROPAGATION_HOST_TO"),
        (True, True, SHARED, SUPPORTED, "needs private propagation, got PROPAGATION_BIDIREC"),
        (True, False, SHARED, SUPPORTED, "must also be read-only"),
        (True, True, PRIVATE, UNSUPPORTED, "handler 'gvisor' does not support recursive"),
        # the rules concern recursive read-only mounts only
        (False, False, SHARED, UNSUPPORTED, None),
        (False, True, SLAVE, UNSUPPORTED, None),
    ],
)
def test_rule_table(
    recursive: bool,
    readonly: bool,
    propagation: cri.MountPropagation,
    features: cri.RuntimeHandlerFeatures,
    error: str | None,
) -> None:
    mounts = [
        cri.Mount(host_path="/a", container_path="/a"),
        cri.Mount(
            host_path="/data",
            container_path="/data",
            readonly=readonly,
            recursive_read_only=recursive,
            propagation=propagation,
        ),
    ]
    if error is None:
        check_recursive_read_only(mounts, features, "gvisor")
        return
    with pytest.raises(InvalidArgumentError, match=error) as raised:
        check_recursive_read_only(mounts, features, "gvisor")
    assert "config.mounts[1] (host_path '/data')" in raised.value.message


class PlainFake(FakeShim):
    """A shim that keeps the Shim interface's default features."""

    def runtime_handler_features(self, handler: str) -> cri.RuntimeHandlerFeatures:
        return Shim.runtime_handler_features(self, handler)


def _handlers(runtime: CRIRuntime) -> dict[str, bool]:
    status = runtime.status(cri.StatusRequest())
    return {h.name: h.features.recursive_read_only_mounts for h in status.runtime_handlers}


def _create(runtime: CRIRuntime, handler: str, mount: cri.Mount) -> str:
    pod = cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name=f"p{handler}", uid="u"))
    pod_id = runtime.run_pod_sandbox(
        cri.RunPodSandboxRequest(config=pod, runtime_handler=handler)
    ).pod_sandbox_id
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="c"),
        image=cri.ImageSpec(image="busybox"),
        command=["sleep", "1"],
        mounts=[mount],
    )
    request = cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod)
    return runtime.create_container(request).container_id


RRO = cri.Mount(host_path="/tmp", container_path="/t", readonly=True, recursive_read_only=True)


@pytest.fixture
def router() -> Iterator[CRIRuntime]:
    runtime = CRIRuntime(HandlerRouter({"yes": FakeShim(), "no": PlainFake()}, default="no"))
    yield runtime
    runtime.close()


def test_status_reports_what_each_handler_says(router: CRIRuntime) -> None:
    assert _handlers(router) == {"": False, "yes": True, "no": False}


def test_refused_where_the_handler_cannot(router: CRIRuntime) -> None:
    with pytest.raises(InvalidArgumentError, match="handler 'no' does not support"):
        _create(router, "no", RRO)
    container_id = _create(router, "yes", RRO)
    status = router.container_status(cri.ContainerStatusRequest(container_id=container_id))
    assert status.status.mounts[0].recursive_read_only


def test_rules_come_before_the_shim() -> None:
    """A refused request never reaches the shim's create_container."""
    shim = FakeShim()
    runtime = CRIRuntime(shim)
    bad = cri.Mount(host_path="/tmp", container_path="/t", recursive_read_only=True)
    with pytest.raises(InvalidArgumentError, match="read-only"):
        _create(runtime, "", bad)
    assert shim.list_containers(None) == []
    runtime.close()
