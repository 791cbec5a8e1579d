"""Test helpers for pycri users and for shim authors.

* :func:`serve_fake` runs an in-process CRI endpoint on the fake shim, for
  testing your own CRI client code against something that behaves like a
  runtime (and can be told to fail);
* :mod:`pycri.testing.conformance` is the suite every shim must pass;
* :class:`pycri.testing.server_process.ServerProcess` runs pycri-server in a
  process of its own, for tests that kill -9 it and start it again;
* :mod:`pycri.testing.critest` runs critest (its suite or its benchmarks) and
  reads its report; :mod:`pycri.testing.critest_endpoints` gives it pycri-server
  on a shim, or containerd's CRI as the reference;
* :func:`engine_shims` and :func:`require_shim` let a test run on every
  registered shim that drives a real engine, so a new shim joins by
  registering.
"""

from __future__ import annotations

import tempfile
import threading
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

__all__ = [
    "CollectedOutput",
    "FakeEndpoint",
    "engine_shims",
    "require_real",
    "require_shim",
    "serve_fake",
]


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


def engine_shims() -> list[str]:
    """The registered shims that drive a real engine (all but the fake), sorted."""
    from pycri.registry import available_shims

    return sorted(name for name in available_shims() if name != "fake")


def require_shim(name: str) -> None:
    """:func:`require_real` for shim ``name``: it loads and its engine answers."""
    from pycri.errors import CRIError
    from pycri.registry import ShimLoadError, load_shim

    try:
        shim = load_shim(name)
        try:
            shim.runtime_version()
        finally:
            shim.close()
    except (ShimLoadError, CRIError) as err:
        require_real(False, f"the {name} shim is not usable here: {err}")


class CollectedOutput:
    """A streaming ``Output`` that keeps what it is sent: for testing ``exec_stream``/``attach``.

    Set ``gone`` to make further writes fail, as they do once the client has left.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.data = b""
        self.closed = False
        self.gone = False

    def write(self, data: bytes) -> None:
        if self.gone:
            raise ConnectionResetError("the client went away")
        with self._lock:
            self.data += data

    def close(self) -> None:
        self.closed = True
