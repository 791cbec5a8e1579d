"""The real crictl drives ``pycri-server --shim nerdctl``; kill -9 of the server loses nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycri.core.logs import parse_log_line
from pycri.testing.conformance import wait_for
from pycri_shims.nerdctl.testing import (
    Created,
    created_fixture,  # noqa: F401 - a shared fixture
    ready_fixture,  # noqa: F401 - a shared fixture
)

pytestmark = pytest.mark.real

PULL_IMAGE = "127.0.0.1:5000/pycri/busybox:latest"
APP = "crictl-nerdctl"


class Server:
    """``python -m pycri.server.main --shim nerdctl`` on a unix socket, as a process."""

    def __init__(self, sock: Path, log: Path) -> None:
        self.sock = sock
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"unix://{self.sock}"

    def _started(self) -> int:
        if not self.log.exists():
            return 0
        return self.log.read_text().count(f"serving the nerdctl shim on {self.endpoint}")

    def start(self) -> None:
        already = self._started()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pycri.server.main",
                    "--shim",
                    "nerdctl",
                    "--listen",
                    self.endpoint,
                    "--log-level",
                    "debug",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while self._started() == already:
            assert self.process.poll() is None, f"pycri-server exited: {self.log.read_text()}"
            assert time.monotonic() < deadline, "pycri-server did not start"
            time.sleep(0.05)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def server(crictl: str, tmp_path: Path, created: Created) -> Iterator[Server]:
    server = Server(tmp_path / "cri.sock", tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        # whatever a failed test left: remove its pods through the server
        if server.process is not None and server.process.poll() is None:
            run = Crictl(crictl, server.endpoint, tmp_path)
            for pod_id in run("pods", "-q", "--label", f"app={APP}").split():
                run("rmp", "--force", pod_id)
        server.stop()
        assert not server.sock.exists(), "the server left its socket behind"


class Crictl:
    def __init__(self, binary: str, endpoint: str, workdir: Path) -> None:
        config = workdir / "crictl.yaml"
        config.write_text(f"runtime-endpoint: {endpoint}\nimage-endpoint: {endpoint}\n")
        self.base = [binary, "--config", str(config), "--timeout", "60s"]

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"crictl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        # crictl wants its flags before the positional arguments
        return json.loads(self(args[0], "-o", "json", *args[1:]))


def write_specs(tmp_path: Path, command: list[str]) -> tuple[Path, Path]:
    uid = uuid.uuid4().hex
    pod_json = tmp_path / "pod.json"
    pod_json.write_text(
        json.dumps(
            {
                "metadata": {"name": f"crictl-{uid[:8]}", "namespace": "default", "uid": uid},
                "hostname": "crictl-pod",
                "log_directory": str(tmp_path / "logs"),
                "labels": {"app": APP},
                "linux": {},
            }
        )
    )
    container_json = tmp_path / "container.json"
    container_json.write_text(
        json.dumps(
            {
                "metadata": {"name": "talker"},
                "image": {"image": "busybox"},
                "command": command,
                "log_path": "talker.log",
                "linux": {},
            }
        )
    )
    return pod_json, container_json


def test_crictl_lifecycle(crictl: str, server: Server, tmp_path: Path, created: Created) -> None:
    run = Crictl(crictl, server.endpoint, tmp_path)
    pod_json, container_json = write_specs(
        tmp_path, ["sh", "-c", "echo hello-from-nerdctl; echo oops >&2; sleep 3600"]
    )
    assert "nerdctl 1.7" in run("version")
    conditions = {c["type"]: c["status"] for c in run.json("info")["status"]["conditions"]}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}

    pod_id = created.add(run("runp", str(pod_json)).strip())
    pod = run.json("inspectp", pod_id)["status"]
    assert pod["state"] == "SANDBOX_READY"
    assert pod["network"]["ip"]
    container_id = created.add(run("create", pod_id, str(container_json), str(pod_json)).strip())
    run("start", container_id)
    listed = run.json("ps")["containers"]
    assert [(c["id"], c["state"]) for c in listed if c["podSandboxId"] == pod_id] == [
        (container_id, "CONTAINER_RUNNING")
    ]
    assert run("exec", "-s", container_id, "echo", "via-exec").strip() == "via-exec"

    def logged() -> bool:
        result = subprocess.run(
            [*run.base, "logs", container_id], capture_output=True, text=True, check=False
        )
        return "hello-from-nerdctl" in result.stdout and "oops" in result.stderr

    wait_for(logged, 10, "crictl logs")
    stats = run.json("stats", "--id", container_id)["stats"]
    assert [s["attributes"]["id"] for s in stats] == [container_id]
    assert int(stats[0]["memory"]["workingSetBytes"]["value"]) > 0

    run("stop", "--timeout", "2", container_id)
    assert run.json("inspect", container_id)["status"]["state"] == "CONTAINER_EXITED"
    run("rm", container_id)
    assert container_id[:13] not in run("ps", "-a")
    run("stopp", pod_id)
    run("rmp", pod_id)
    assert pod_id[:13] not in run("pods")

    run("pull", PULL_IMAGE)
    assert "127.0.0.1:5000/pycri/busybox" in run("images")
    image = run.json("inspecti", PULL_IMAGE)["status"]
    assert PULL_IMAGE in image["repoTags"]
    run("rmi", PULL_IMAGE)
    assert "127.0.0.1:5000/pycri/busybox" not in run("images")
    assert run.json("imagefsinfo")["status"]["imageFilesystems"]


def test_kill_9_and_restart_lose_nothing(
    crictl: str, server: Server, tmp_path: Path, created: Created
) -> None:
    run = Crictl(crictl, server.endpoint, tmp_path)
    lines = 40
    pod_json, container_json = write_specs(
        tmp_path, ["sh", "-c", f"for i in $(seq 1 {lines}); do echo line $i; sleep 0.1; done"]
    )
    pod_id = created.add(run("runp", str(pod_json)).strip())
    container_id = created.add(run("create", pod_id, str(container_json), str(pod_json)).strip())
    run("start", container_id)
    log = tmp_path / "logs" / "talker.log"
    wait_for(lambda: log.exists() and b"line 5\n" in log.read_bytes(), 10, "the first lines")

    server.kill9()  # the copier dies mid-stream; the container keeps talking
    time.sleep(1.0)
    server.start()

    assert run.json("inspectp", pod_id)["status"]["state"] == "SANDBOX_READY"
    status = run.json("inspect", container_id)["status"]
    assert status["metadata"]["name"] == "talker"
    wait_for(
        lambda: run.json("inspect", container_id)["status"]["state"] == "CONTAINER_EXITED",
        30,
        "the container to finish",
    )

    def numbers() -> list[int]:
        parsed = [parse_log_line(raw) for raw in log.read_bytes().splitlines()]
        return [int(line.message.split()[1]) for line in parsed]

    wait_for(lambda: len(numbers()) >= lines, 10, "every line in the CRI log")
    assert numbers() == list(range(1, lines + 1))  # nothing lost, nothing twice
    run("rmp", "--force", pod_id)
    assert pod_id[:13] not in run("pods")


def test_server_reports_process_counts(crictl: str, server: Server, tmp_path: Path) -> None:
    run = Crictl(crictl, server.endpoint, tmp_path)
    run("pods")
    run("ps", "-a")
    run("images")
    info = run.json("info")  # crictl shows verbose info parsed
    counts = info["nerdctlProcesses"]
    # lists: 1 ps until the container view is fresh, none after (view.py)
    assert counts["ListPodSandbox"]["per_rpc"] <= 1.0
    assert counts["ListContainers"]["per_rpc"] <= 1.0
    assert counts["ListImages"]["per_rpc"] == 1.0
    assert set(info["containerView"]) >= {"fresh", "generation", "rebuilds"}
    # every nerdctl process is logged (at debug) with the RPC it served
    logged = server.log.read_text()
    assert "[ListImages #1] images" in logged
