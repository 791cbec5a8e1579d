"""The shim conformance suite on the fake shim (the docker and nerdctl shims run it too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pycri.testing.conformance import ConformanceConfig, ShimConformance
from pycri_shims.fake import FakeShim


class TestFakeConformance(ShimConformance):
    @pytest.fixture
    def conformance(self) -> ConformanceConfig:
        # each test has a FakeShim of its own, which "pulls" anything
        return ConformanceConfig(sandbox_image_removable=True, real_mounts=False)

    @pytest.fixture
    def shim(self) -> Iterator[FakeShim]:
        shim = FakeShim()
        yield shim
        shim.close()
