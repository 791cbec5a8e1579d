"""The shim conformance suite on the nerdctl shim, against real containerd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.shim import Shim
from pycri.testing.conformance import ConformanceConfig, PodFactory, ShimConformance
from pycri.testing.submounts import tree_with_submount
from pycri_shims.nerdctl import NerdctlShim
from pycri_shims.nerdctl.testing import (
    Created,
    TrackingShim,
    created_fixture,  # noqa: F401 - a shared fixture
    ready_fixture,  # noqa: F401 - a shared fixture
)

pytestmark = pytest.mark.real

#: a device nerdctl cannot find, which makes it refuse the create
MISSING_DEVICE = "/dev/pycri-no-such-device"


class TestNerdctlConformance(ShimConformance):
    @pytest.fixture
    def conformance(self) -> ConformanceConfig:
        return ConformanceConfig(
            image="docker.io/library/busybox:latest",
            pull_image="127.0.0.1:5000/pycri/busybox:latest",
            # about 1 s of nerdctl processes a round; 100 rounds lost 40 logs before the fix
            exit_log_rounds=40,
        )

    @pytest.fixture
    def shim(self, created: Created) -> Iterator[NerdctlShim]:
        shim = TrackingShim(created)
        yield shim
        shim.close()

    def image_volume_leftovers(self, shim: Shim) -> list[str]:
        assert isinstance(shim, NerdctlShim)
        return shim.volumes.leftovers()

    def test_recursive_read_only_staging_undone_when_create_fails(
        self,
        client: CRIClient,
        pods: PodFactory,
        conformance: ConformanceConfig,
        shim: NerdctlShim,
        tmp_path: Path,
    ) -> None:
        """nerdctl refuses the create after pycri staged the mount: the staging goes too."""
        pod_id, pod = pods.run()
        with tree_with_submount(tmp_path / "host") as tree:
            config = cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name="refused"),
                image=cri.ImageSpec(image=conformance.image),
                command=["sleep", "60"],
                mounts=[
                    cri.Mount(
                        host_path=str(tree.path),
                        container_path="/data",
                        readonly=True,
                        recursive_read_only=True,
                    )
                ],
                devices=[cri.Device(host_path=MISSING_DEVICE, container_path=MISSING_DEVICE)],
            )
            request = cri.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=config, sandbox_config=pod
            )
            with pytest.raises(CRIError, match="no such file or directory"):
                client.create_container(request)
            assert tree.copies() == 0
            assert not any(name.startswith("k8s_refused_") for name in shim.staging.staged())
