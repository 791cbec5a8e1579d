from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from pycri.testing import FakeEndpoint, require_real, serve_fake


@pytest.fixture
def fake_endpoint() -> Iterator[FakeEndpoint]:
    with serve_fake() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def crictl() -> str:
    path = shutil.which("crictl")
    require_real(path is not None, "the real crictl is not installed (scripts/setup-runtimes.sh)")
    assert path is not None
    return path
