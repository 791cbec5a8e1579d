from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from pycri.core.runtime import CRIRuntime
from pycri.testing import FakeEndpoint, require_real, serve_fake
from pycri_shims.fake import FakeShim


@pytest.fixture
def fake() -> Iterator[FakeShim]:
    """A fake shim with its default images (a module may override it with others)."""
    shim = FakeShim()
    yield shim
    shim.close()


@pytest.fixture
def runtime(fake: FakeShim) -> CRIRuntime:
    """Core's CRI over ``fake``, called as Python methods."""
    return CRIRuntime(fake)


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


_CRITEST_LINES = pytest.StashKey[list[str]]()


@pytest.fixture
def critest_summary(request: pytest.FixtureRequest) -> list[str]:
    """Lines for the end of the session's report (critest's numbers, new passes)."""
    return request.config.stash.setdefault(_CRITEST_LINES, [])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_CRITEST_LINES, [])
    if lines:
        terminalreporter.section("critest")
        for line in lines:
            terminalreporter.write_line(line)
