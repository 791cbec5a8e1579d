"""pycri-server with several shims: one per runtime handler."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.router import HandlerRouter
from pycri.errors import InvalidArgumentError
from pycri.registry import ShimLoadError
from pycri.server.main import build_shim


def test_two_fake_handlers_end_to_end(tmp_path: Path) -> None:
    sock = tmp_path / "cri.sock"
    server = subprocess.Popen(
        [sys.executable, "-m", "pycri.server.main", "--shim", "fake=old", "--shim", "fake=new",
         "--default-handler", "new", "-O", "old.pull_delay=0", "--listen", f"unix://{sock}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert server.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with CRIClient(f"unix://{sock}") as client:
            handlers = [h.name for h in client.status().runtime_handlers]
            assert handlers == ["", "old", "new"]
            for name, handler in (("a", "old"), ("b", "")):
                config = cri.PodSandboxConfig(
                    metadata=cri.PodSandboxMetadata(name=name, namespace="n", uid=name)
                )
                client.run_pod_sandbox(
                    cri.RunPodSandboxRequest(config=config, runtime_handler=handler)
                )
            listed = {p.metadata.name: p.runtime_handler for p in client.list_pod_sandbox().items}
            assert listed == {"a": "old", "b": "new"}
            with pytest.raises(InvalidArgumentError, match="'old', 'new'"):
                client.run_pod_sandbox(
                    cri.RunPodSandboxRequest(config=config, runtime_handler="kata")
                )
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_build_shim_rules() -> None:
    router = build_shim(["fake", "fake=b"], [("b.pull_delay", "0")], None)
    assert isinstance(router, HandlerRouter)
    assert router.default == "fake"
    router.close()
    with pytest.raises(ValueError, match="must name its handler"):
        build_shim(["fake", "fake=b"], [("pull_delay", "0")], None)
    with pytest.raises(ValueError, match="given twice"):
        build_shim(["fake", "fake"], [], None)
    with pytest.raises(ValueError, match="--default-handler"):
        build_shim(["fake", "fake=b"], [], "c")
    with pytest.raises(ShimLoadError, match="unknown shim"):
        build_shim(["fake", "nope"], [], None)
