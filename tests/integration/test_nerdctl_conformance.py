"""The shim conformance suite on the nerdctl shim, against real containerd."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pycri.shim import Shim
from pycri.testing import require_real
from pycri.testing.conformance import ConformanceConfig, ShimConformance
from pycri_shims.nerdctl import NerdctlShim
from pycri_shims.nerdctl.testing import Created, TrackingShim, why_unavailable

pytestmark = pytest.mark.real


@pytest.fixture(scope="module", autouse=True)
def nerdctl_ready() -> None:
    problem = why_unavailable()
    require_real(problem is None, problem or "")


@pytest.fixture(scope="module")
def created(nerdctl_ready: None) -> Iterator[Created]:
    created = Created()
    yield created
    assert created.left() == {}, "pods or containers (or their pod IPs) were left behind"


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
