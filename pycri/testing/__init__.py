"""Test helpers for pycri users and for shim authors.

* :func:`serve_fake` runs an in-process CRI endpoint on the fake shim, for
  testing your own CRI client code against something that behaves like a
  runtime (and can be told to fail);
* :mod:`pycri.testing.conformance` is the suite every shim must pass.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycri.client import CRIClient
from pycri.core.runtime import CRIRuntime
from pycri.server.server import CRIServer

if TYPE_CHECKING:
    from pycri_shims.fake import FakeShim

__all__ = ["FakeEndpoint", "require_real", "serve_fake"]


@dataclass
class FakeEndpoint:
    """A running fake CRI endpoint: connect with ``client`` or ``address``."""

    address: str
    client: CRIClient
    fake: FakeShim
    server: CRIServer


@contextmanager
def serve_fake(**fake_options: Any) -> Iterator[FakeEndpoint]:
    """Serve a fresh :class:`FakeShim` on a unix socket in a temporary directory."""
    from pycri_shims.fake import FakeShim

    fake = FakeShim(**fake_options)
    runtime = CRIRuntime(fake)
    with tempfile.TemporaryDirectory(prefix="pycri-") as tmp:
        server = CRIServer(runtime, f"unix://{Path(tmp) / 'cri.sock'}").start()
        client = CRIClient(server.address)
        try:
            yield FakeEndpoint(server.address, client, fake, server)
        finally:
            client.close()
            server.stop(grace=0.5)
            runtime.close()


def require_real(available: bool, reason: str) -> None:
    """Skip a test that needs a real runtime or binary; fail instead in CI.

    ``PYCRI_REQUIRE_REAL=1`` (set by .ci/run after it started the runtimes)
    turns a missing runtime into a failure, so CI cannot pass by skipping.
    """
    import os

    import pytest

    if available:
        return
    if os.environ.get("PYCRI_REQUIRE_REAL") == "1":
        pytest.fail(f"PYCRI_REQUIRE_REAL=1 but {reason}", pytrace=False)
    pytest.skip(reason)
