"""The real crictl (kubernetes-sigs/cri-tools) drives pycri-server on the fake shim."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.real


class Crictl:
    def __init__(self, binary: str, endpoint: str, config: Path) -> None:
        self.base = [
            binary,
            "--config",
            str(config),
            "--runtime-endpoint",
            endpoint,
            "--image-endpoint",
            endpoint,
            "--timeout",
            "20s",
        ]

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"crictl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> dict[str, object]:
        # crictl wants flags before positional arguments
        parsed: dict[str, object] = json.loads(self(args[0], "-o", "json", *args[1:]))
        return parsed


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    sock = tmp_path / "cri.sock"
    with (tmp_path / "server.log").open("w") as server_log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pycri.server.main",
                "--shim",
                "fake",
                "--listen",
                f"unix://{sock}",
            ],
            stdout=server_log,
            stderr=server_log,
        )
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert process.poll() is None, (tmp_path / "server.log").read_text()
        assert time.monotonic() < deadline, "pycri-server did not start"
        time.sleep(0.05)
    try:
        yield f"unix://{sock}"
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


def test_crictl_lifecycle_on_fake(crictl: str, server: str, tmp_path: Path) -> None:
    config = tmp_path / "crictl.yaml"
    config.write_text(f"runtime-endpoint: {server}\nimage-endpoint: {server}\ntimeout: 20\n")
    run = Crictl(crictl, server, config)
    pod_json = tmp_path / "pod.json"
    pod_json.write_text(
        json.dumps(
            {
                "metadata": {
                    "name": "crictl-pod",
                    "namespace": "default",
                    "uid": "crictl-uid-1",
                    "attempt": 0,
                },
                "log_directory": str(tmp_path / "logs"),
                "labels": {"app": "demo"},
                "linux": {},
            }
        )
    )
    container_json = tmp_path / "container.json"
    container_json.write_text(
        json.dumps(
            {
                "metadata": {"name": "hello"},
                "image": {"image": "busybox"},
                "command": ["sh", "-c", "echo hello-from-fake; sleep 3600"],
                "log_path": "hello.log",
                "linux": {},
            }
        )
    )

    version = run("version")
    assert "RuntimeName:  pycri" in version
    assert "RuntimeApiVersion:  v1" in version
    info = run.json("info")
    conditions = {c["type"]: c["status"] for c in info["status"]["conditions"]}  # type: ignore[index]
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}

    pod_id = run("runp", str(pod_json)).strip()
    assert len(pod_id) == 64
    assert "crictl-pod" in run("pods")
    pod = run.json("inspectp", pod_id)
    assert pod["status"]["state"] == "SANDBOX_READY"  # type: ignore[index]
    assert pod["status"]["labels"] == {"app": "demo"}  # type: ignore[index]

    container_id = run("create", pod_id, str(container_json), str(pod_json)).strip()
    assert len(container_id) == 64
    run("start", container_id)
    assert container_id[:13] in run("ps")
    inspected = run.json("inspect", container_id)
    assert inspected["status"]["state"] == "CONTAINER_RUNNING"  # type: ignore[index]

    assert run("exec", "-s", container_id, "echo", "via-exec").strip() == "via-exec"
    deadline = time.monotonic() + 10
    while "hello-from-fake" not in (logs := run("logs", container_id)):
        assert time.monotonic() < deadline, f"no log line; got {logs!r}"
        time.sleep(0.1)

    run("stop", "--timeout", "2", container_id)
    assert run.json("inspect", container_id)["status"]["state"] == "CONTAINER_EXITED"  # type: ignore[index]
    run("rm", container_id)
    assert container_id[:13] not in run("ps", "-a")
    run("stopp", pod_id)
    run("rmp", pod_id)
    assert "crictl-pod" not in run("pods")

    run("pull", "busybox:1.36")
    assert "docker.io/library/busybox" in run("images")
    image = run.json("inspecti", "busybox:1.36")
    assert "docker.io/library/busybox:1.36" in image["status"]["repoTags"]  # type: ignore[index]
    run("rmi", "busybox:1.36")
    assert "1.36" not in run("images")
    fsinfo = run.json("imagefsinfo")
    assert fsinfo["status"]["imageFilesystems"]  # type: ignore[index]
