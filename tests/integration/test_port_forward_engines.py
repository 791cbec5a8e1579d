"""The real crictl port-forwards into pods on the engine shims (docker, nerdctl)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycri.errors import CRIError
from pycri.registry import ShimLoadError, load_shim
from pycri.testing import require_real

pytestmark = pytest.mark.real
TIMEOUT = 30


@pytest.fixture(params=["docker", "nerdctl"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    try:
        shim = load_shim(str(request.param))
        shim.runtime_version()
        shim.close()
    except (ShimLoadError, CRIError) as err:
        require_real(False, f"the {request.param} shim is not usable here: {err}")
    sock = tmp_path / "cri.sock"
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "pycri.server.main", "--shim", str(request.param),
         "--listen", f"unix://{sock}"],
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def test_port_forward_to_busybox_httpd(crictl: str, endpoint: str, tmp_path: Path) -> None:
    base = [crictl, "--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "-t", "60s"]

    def run(*args: str) -> str:
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    uid = uuid.uuid4().hex
    pod_json, ctr_json = tmp_path / "pod.json", tmp_path / "ctr.json"
    pod_json.write_text(json.dumps({
        "metadata": {"name": "pf", "namespace": "pf", "uid": uid},
        "log_directory": str(tmp_path / "logs"), "linux": {},
    }))  # fmt: skip
    script = "mkdir -p /www; echo hello from busybox > /www/index.html; httpd -f -p 8080 -h /www"
    ctr_json.write_text(json.dumps({
        "metadata": {"name": "httpd"}, "image": {"image": "docker.io/library/busybox:latest"},
        "command": ["sh", "-c", script], "log_path": "httpd.log", "linux": {},
    }))  # fmt: skip
    pod = run("runp", str(pod_json))
    try:
        container = run("create", "--no-pull", pod, str(ctr_json), str(pod_json))
        run("start", container)
        forward = subprocess.Popen(
            [*base, "port-forward", pod, "0:8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert forward.stdout is not None
            line = forward.stdout.readline().decode()
            assert line.startswith("Forwarding from 127.0.0.1:"), line
            port = int(line.split(":")[1].split()[0])
            deadline = time.monotonic() + TIMEOUT
            while True:  # httpd may still be starting in the container
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                        assert (r.status, r.read()) == (200, b"hello from busybox\n")
                        break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.3)
        finally:
            forward.send_signal(signal.SIGINT)
            try:
                forward.wait(10)
            except subprocess.TimeoutExpired:
                forward.kill()
                forward.wait()
            for stream in (forward.stdout, forward.stderr):
                if stream is not None:
                    stream.close()
    finally:
        run("stopp", pod)
        run("rmp", pod)
