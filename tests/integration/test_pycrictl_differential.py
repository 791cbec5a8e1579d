"""pycrictl -o json against the real crictl -o json, on the same endpoints.

Peers: pycri-server on the fake shim (in a subprocess) and containerd's own
CRI socket when it answers. Each command is run as crictl, pycrictl,
crictl; values that differ between crictl's two runs are volatile (a
timestamp taken per call) and are the only thing masked. Key order is
compared too, so the documents match as protojson/Go emit them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.testing import require_real

pytestmark = pytest.mark.real

CONTAINERD = "unix:///run/containerd/containerd.sock"
BUSYBOX = "docker.io/library/busybox:latest"
VOLATILE = "<volatile>"


def _answers(endpoint: str) -> bool:
    with CRIClient(endpoint, timeout=5) as client:
        try:
            client.version(cri.VersionRequest(version="v1"))
        except CRIError:
            return False
    return Path(endpoint.removeprefix("unix://")).exists()


@pytest.fixture
def pycri_server(tmp_path: Path) -> Iterator[str]:
    sock = tmp_path / "cri.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "pycri.server.main", "--shim", "fake", "--listen", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert process.poll() is None, "pycri-server exited"
            assert time.monotonic() < deadline, "pycri-server did not start"
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(params=["pycri-fake", "containerd"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "containerd":
        available = Path(CONTAINERD.removeprefix("unix://")).exists() and _answers(CONTAINERD)
        require_real(available, f"containerd's CRI socket {CONTAINERD} does not answer")
        return CONTAINERD
    server: str = request.getfixturevalue("pycri_server")
    return server


class Tools:
    """The real crictl and pycrictl, pointed at one endpoint."""

    def __init__(self, crictl: str, endpoint: str, tmp: Path) -> None:
        config = tmp / "crictl.yaml"
        config.write_text(f"runtime-endpoint: {endpoint}\nimage-endpoint: {endpoint}\n")
        common = ["--config", str(config), "-r", endpoint, "-i", endpoint, "--timeout", "20s"]
        self.crictl = [crictl, *common]
        self.pycrictl = [sys.executable, "-m", "pycri.cli", *common]

    @staticmethod
    def run(argv: list[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{argv} failed: {done.stderr}"
        return done.stdout

    def three(self, *args: str) -> tuple[str, str, str]:
        """crictl, pycrictl, crictl: the middle run is checked against the two around it."""
        first = self.run([*self.crictl, *args])
        ours = self.run([*self.pycrictl, *args])
        return first, ours, self.run([*self.crictl, *args])


def volatile(a: Any, b: Any, path: tuple[Any, ...] = ()) -> set[tuple[Any, ...]]:
    """Paths whose values differ between two documents."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {p for key in a for p in volatile(a[key], b[key], (*path, key))}
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return {
            p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in volatile(x, y, (*path, i))
        }
    return set() if a == b else {path}


def mask(doc: Any, paths: set[tuple[Any, ...]], path: tuple[Any, ...] = ()) -> Any:
    if path in paths:
        return VOLATILE
    if isinstance(doc, dict):
        return {key: mask(value, paths, (*path, key)) for key, value in doc.items()}
    if isinstance(doc, list):
        return [mask(value, paths, (*path, i)) for i, value in enumerate(doc)]
    return doc


def key_order(doc: Any) -> Any:
    """The keys of every object in order (values dropped), to compare layouts."""
    if isinstance(doc, dict):
        return [(key, key_order(value)) for key, value in doc.items()]
    if isinstance(doc, list):
        return [key_order(value) for value in doc]
    return None


def by_id(doc: Any) -> Any:
    """crictl's image order is not determined once an image has no tag: its Less is no
    strict weak order and containerd lists images in map order (pycri/cli/gosort.py)."""
    return {**doc, "images": sorted(doc["images"], key=lambda image: image["id"])}


def assert_same_json(tools: Tools, *args: str, order: Callable[[Any], Any] = lambda d: d) -> Any:
    first, ours, again = (order(json.loads(text)) for text in tools.three(*args))
    paths = volatile(first, again)
    assert mask(ours, paths) == mask(first, paths), f"pycrictl {' '.join(args)} differs"
    assert key_order(ours) == key_order(first), f"pycrictl {' '.join(args)}: key order differs"
    return ours


@pytest.fixture
def workload(endpoint: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A pod with one running container on the peer; removed afterwards."""
    tag = uuid.uuid4().hex[:12]
    client = CRIClient(endpoint, timeout=60)
    pod_config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=f"diff-{tag}", namespace="pycrictl", uid=tag),
        log_directory=str(tmp_path / "logs"),
        labels={"pycrictl-diff": tag},
        linux=cri.LinuxPodSandboxConfig(),
    )
    pod = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod_config)).pod_sandbox_id
    try:
        ctr_config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name="app"),
            image=cri.ImageSpec(image=BUSYBOX),
            command=["sh", "-c", "echo hello; sleep 3600"],
            log_path="app.log",
            labels={"pycrictl-diff": tag},
        )
        request = cri.CreateContainerRequest(
            pod_sandbox_id=pod, config=ctr_config, sandbox_config=pod_config
        )
        ctr = client.create_container(request).container_id
        client.start_container(cri.StartContainerRequest(container_id=ctr))
        yield pod, ctr, f"pycrictl-diff={tag}"
    finally:
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod))
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod))
        client.close()


def test_json_matches_crictl(
    crictl: str, endpoint: str, workload: tuple[str, str, str], tmp_path: Path
) -> None:
    pod, ctr, label = workload
    tools = Tools(crictl, endpoint, tmp_path)

    pods = assert_same_json(tools, "pods", "--label", label, "-o", "json")
    assert [item["id"] for item in pods["items"]] == [pod]
    containers = assert_same_json(tools, "ps", "-a", "--label", label, "-o", "json")
    assert [item["id"] for item in containers["containers"]] == [ctr]
    images = assert_same_json(tools, "images", "-o", "json", order=by_id)
    assert any(BUSYBOX in image["repoTags"] for image in images["images"])
    assert assert_same_json(tools, "inspectp", pod)["status"]["id"] == pod
    assert assert_same_json(tools, "inspect", ctr)["status"]["id"] == ctr
    assert_same_json(tools, "inspecti", BUSYBOX)
    assert_same_json(tools, "info")
    assert_same_json(tools, "imagefsinfo")


def test_version_matches_crictl(crictl: str, endpoint: str, tmp_path: Path) -> None:
    # crictl's version has no -o json: the table must match, and our JSON carry the same values
    tools = Tools(crictl, endpoint, tmp_path)
    first, ours, _ = tools.three("version")
    assert ours == first
    table = dict(line.split(":  ", 1) for line in first.splitlines())
    data = json.loads(tools.run([*tools.pycrictl, "version", "-o", "json"]))
    assert data == {
        "version": table["Version"],
        "runtimeName": table["RuntimeName"],
        "runtimeVersion": table["RuntimeVersion"],
        "runtimeApiVersion": table["RuntimeApiVersion"],
    }


def test_tables_match_crictl(
    crictl: str, endpoint: str, workload: tuple[str, str, str], tmp_path: Path
) -> None:
    """The tables line up the same (CREATED can tick over between runs)."""
    pod, ctr, label = workload
    tools = Tools(crictl, endpoint, tmp_path)
    first, ours, again = tools.three("pods", "--label", label)
    assert ours in (first, again) or _same_but_created(ours, first)
    # rows sorted: their order is not determined once an image has no tag (by_id)
    rows = [sorted(text.splitlines()) for text in tools.three("images")]
    assert rows[1] in (rows[0], rows[2])
    first, ours, _ = tools.three("inspect", "-o", "table", ctr)
    assert ours.splitlines()[:3] == first.splitlines()[:3]
    assert tools.three("inspectp", "-o", "table", pod)[1].splitlines()[0] == f"ID: {pod}"


def _same_but_created(ours: str, theirs: str) -> bool:
    strip = [line.split("ago")[-1] for line in ours.splitlines()[1:]]
    return strip == [line.split("ago")[-1] for line in theirs.splitlines()[1:]]


def test_metrics_match_crictl(crictl: str, pycri_server: str, tmp_path: Path) -> None:
    """metricdescs and metricsp (containerd 1.6 has no metrics RPCs: pycri's fake only)."""
    client = CRIClient(pycri_server, timeout=60)
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="metrics", namespace="pycrictl", uid="m1"),
        log_directory=str(tmp_path / "logs"),
    )
    pod = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    ctr_config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="app"),
        image=cri.ImageSpec(image=BUSYBOX),
        command=["sleep", "3600"],
    )
    request = cri.CreateContainerRequest(pod_sandbox_id=pod, config=ctr_config)
    ctr = client.create_container(request).container_id
    client.start_container(cri.StartContainerRequest(container_id=ctr))
    tools = Tools(crictl, pycri_server, tmp_path)
    try:
        descriptors = assert_same_json(tools, "metricdescs", "-o", "json")
        assert descriptors["descriptors"]
        first, ours, _ = tools.three("metricdescs", "-o", "yaml")
        assert yaml.safe_load(ours) == yaml.safe_load(first)
        metrics = assert_same_json(tools, "metricsp", "-o", "json")
        assert [m["podSandboxId"] for m in metrics["podMetrics"]] == [pod]
    finally:
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod))
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod))
        client.close()
