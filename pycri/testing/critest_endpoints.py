"""What critest runs against: pycri-server on an engine shim, or containerd's own CRI.

The conformance gate (tests/integration/test_critest.py) and the benchmark
(benchmarks/bench_critest.py) run critest on the same endpoints: pycri-server
as a kubelet node runs it, and containerd's CRI plugin as the reference.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pycri.testing.server_process import ServerProcess

__all__ = [
    "CONTAINERD_SOCK",
    "CRITEST_POD_NAMESPACE",
    "REFERENCE",
    "SANDBOX_IMAGE",
    "critest_endpoint",
    "pull_sandbox_image",
]

CONTAINERD_SOCK = "/run/containerd/containerd.sock"
#: the reference: containerd's own CRI plugin (its namespace is k8s.io)
REFERENCE = "containerd"
#: critest gives every pod it makes a namespace starting with this
CRITEST_POD_NAMESPACE = "cri-test-namespace"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.9"


def pull_sandbox_image(nerdctl_namespace: str) -> None:
    """A node starts with its sandbox image (critest may remove it later)."""
    subprocess.run(
        ["nerdctl", "--namespace", nerdctl_namespace, "pull", "-q", SANDBOX_IMAGE],
        check=True,
        capture_output=True,
        timeout=300,
    )


@contextmanager
def critest_endpoint(
    target: str, directory: Path, *, nerdctl_namespace: str, log_level: str = ""
) -> Iterator[str]:
    """containerd's CRI socket for :data:`REFERENCE`, else pycri-server on shim ``target``.

    pycri-server listens on ``directory/cri.sock`` (logging to ``server.log``
    there), with what a kubelet node allows (privileged pods: critest's specs
    run some) and streaming; the nerdctl shim in ``nerdctl_namespace``. It
    must exit cleanly when the body is done (RuntimeError otherwise).
    """
    if target == REFERENCE:
        yield f"unix://{CONTAINERD_SOCK}"
        return
    args = ["--allow-privileged", *(["--log-level", log_level] if log_level else [])]
    options = {"namespace": nerdctl_namespace} if target == "nerdctl" else {}
    server = ServerProcess(target, directory, options, args=args, streaming=True)
    server.start().close()
    try:
        yield f"unix://{server.sock}"
    finally:
        try:
            code = server.stop()
        except subprocess.TimeoutExpired:
            code = server.kill9()
    if code != 0:
        raise RuntimeError(f"pycri-server exited with {code}; log {server.log}")
