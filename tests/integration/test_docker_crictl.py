"""The real crictl drives ``pycri-server --shim docker`` through a whole lifecycle."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_docker_support import (
    REGISTRY_BUSYBOX,
    RUN_ID,
    Server,
    docker_client,
    forget_pulled,
    remove_leftovers,
    require_distinct_pull_image,
    scratch_dir,
    wait_for,
)

pytestmark = pytest.mark.real


class Crictl:
    def __init__(self, binary: str, endpoint: str, config: Path) -> None:
        self.base = [binary, "--config", str(config), "--runtime-endpoint", endpoint]
        self.base += ["--image-endpoint", endpoint, "--timeout", "30s"]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def __call__(self, *args: str, timeout: float = 60) -> str:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, f"crictl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        command, *rest = args
        return json.loads(self(command, "-o", "json", *rest))  # flags go before arguments

    def follow_logs(self, container_id: str, until: str, timeout: float) -> list[str]:
        """``crictl logs -f``, read until a line equals ``until``, then stopped."""
        lines: list[str] = []
        process = subprocess.Popen(
            [*self.base, "logs", "-f", container_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        reader = threading.Thread(
            target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout or ()),
            daemon=True,
        )
        reader.start()
        try:
            wait_for(lambda: until in lines, timeout, f"{until!r} from crictl logs -f")
            assert process.poll() is None, "crictl logs -f ended while the container runs"
        finally:
            process.kill()
            process.wait(timeout=10)
            reader.join(timeout=10)
            process.stdout.close()
        return lines


@pytest.fixture
def crictl_on_docker(crictl: str) -> Iterator[tuple[Crictl, Path]]:
    sdk = docker_client()
    require_distinct_pull_image(sdk)
    with scratch_dir() as scratch:
        server = Server(scratch / "cri.sock").start()
        config = scratch / "crictl.yaml"
        config.write_text(f"runtime-endpoint: {server.address}\n")
        try:
            yield Crictl(crictl, server.address, config), scratch
        finally:
            server.stop()
            left = remove_leftovers(sdk)
            forget_pulled(sdk)
            sdk.close()
            assert not left, f"containers left behind: {left}"


def test_crictl_lifecycle(crictl_on_docker: tuple[Crictl, Path]) -> None:
    run, scratch = crictl_on_docker
    pod_json = scratch / "pod.json"
    pod_json.write_text(
        json.dumps(
            {
                "metadata": {
                    "name": f"crictl-{RUN_ID}",
                    "namespace": "default",
                    "uid": uuid.uuid4().hex,
                },
                "hostname": "crictl-pod",
                "log_directory": str(scratch / "logs"),
                "labels": {"app": "crictl"},
                "linux": {},
            }
        )
    )
    container_json = scratch / "container.json"
    script = "echo hello-from-docker; for i in 1 2 3 4 5; do echo tick $i; sleep 0.3; done"
    container_json.write_text(
        json.dumps(
            {
                "metadata": {"name": "hello"},
                "image": {"image": "busybox"},
                "command": ["sh", "-c", f"{script}; sleep 3600"],
                "log_path": "hello.log",
                "linux": {},
            }
        )
    )

    assert "RuntimeName:  pycri" in run("version")
    info = run.json("info")
    conditions = {c["type"]: c["status"] for c in info["status"]["conditions"]}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}

    pod_id = run("runp", str(pod_json)).strip()
    assert len(pod_id) == 64
    assert f"crictl-{RUN_ID}" in run("pods")
    pod = run.json("inspectp", pod_id)
    assert pod["status"]["state"] == "SANDBOX_READY"
    assert pod["status"]["network"]["ip"]

    container_id = run("create", pod_id, str(container_json), str(pod_json)).strip()
    run("start", container_id)
    assert container_id[:13] in run("ps")
    assert run.json("inspect", container_id)["status"]["state"] == "CONTAINER_RUNNING"
    assert run("exec", "-s", container_id, "hostname").strip() == "crictl-pod"

    # logs -f streams the lines as the container writes them; it runs until killed
    followed = run.follow_logs(container_id, until="tick 5", timeout=20)
    expected = ["hello-from-docker", *[f"tick {i}" for i in range(1, 6)]]
    assert followed == expected
    assert run("logs", container_id).splitlines() == expected

    stats = run.json("stats", "--id", container_id)
    assert [s["attributes"]["id"] for s in stats["stats"]] == [container_id]
    assert int(stats["stats"][0]["memory"]["workingSetBytes"]["value"]) > 0

    run("stop", "--timeout", "2", container_id)
    assert run.json("inspect", container_id)["status"]["state"] == "CONTAINER_EXITED"
    run("rm", container_id)
    assert container_id[:13] not in run("ps", "-a")
    run("stopp", pod_id)
    run("rmp", pod_id)
    assert f"crictl-{RUN_ID}" not in run("pods")

    run("pull", REGISTRY_BUSYBOX)
    assert "127.0.0.1:5000/pycri/busybox" in run("images")
    image = run.json("inspecti", REGISTRY_BUSYBOX)
    assert REGISTRY_BUSYBOX in image["status"]["repoTags"]
    run("rmi", REGISTRY_BUSYBOX)
    tags = {tag for image in run.json("images")["images"] for tag in image["repoTags"] or ()}
    assert REGISTRY_BUSYBOX not in tags
    assert run.json("imagefsinfo")["status"]["imageFilesystems"]
