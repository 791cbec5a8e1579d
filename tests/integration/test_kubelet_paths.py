"""One multi-container pod through every CRI path, with the same observable results.

Paths: pycri-server on the fake, docker and nerdctl shims (subprocesses), and
containerd's own CRI socket. The pod has an init container that writes into a
shared emptyDir, a web server and a client talking over localhost, exec
probes, and a container that crashes and is restarted with back-off.

"Identical" means the same summary (phases, readiness, container states,
restart counts, init results, probe verdicts, log lines) on every path. The
fake runtime simulates processes: it has no network (``wget`` is not found)
and no shared filesystem between containers (each has its own in-memory
files), so on the fake the two network/emptyDir facts are not asserted; they
are asserted on every real runtime.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.kubelet import Kubelet, PodStatus
from pycri.kubelet.model import labels as L
from pycri.testing import require_real

pytestmark = pytest.mark.real

CONTAINERD = "unix:///run/containerd/containerd.sock"
IMAGE = "docker.io/library/busybox:latest"
RUN = uuid.uuid4().hex[:8]

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "sidecars", "namespace": "kubelet-it", "labels": {"app": "sidecars"}},
    "spec": {
        "terminationGracePeriodSeconds": 2,
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "initContainers": [
            {
                "name": "init",
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    "sh",
                    "-c",
                    "echo hello-from-init > /shared/index.html; echo init done",
                ],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
            }
        ],
        "containers": [
            {
                "name": "web",
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["httpd", "-f", "-p", "8080", "-h", "/shared"],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                "livenessProbe": {
                    "exec": {"command": ["test", "-d", "/shared"]},
                    "periodSeconds": 1,
                },
            },
            {
                "name": "client",
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    "sh",
                    "-c",
                    "touch /tmp/ready; while true; do "
                    "wget -q -O /shared/fetched.tmp http://127.0.0.1:8080/index.html "
                    "&& mv /shared/fetched.tmp /shared/fetched; sleep 1; done",
                ],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                "readinessProbe": {
                    "exec": {"command": ["test", "-e", "/tmp/ready"]},
                    "periodSeconds": 1,
                },
            },
            {
                "name": "crasher",
                "image": IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo crashing; sleep 1; exit 3"],
            },
        ],
    },
}

#: what every path must show once the crasher is in CrashLoopBackOff
EXPECTED = {
    "phase": "Running",
    "ready": False,
    "init": ("terminated", "Completed", 0),
    "web": ("running", True, 0),
    "client": ("running", True, 0),
    "crasher": ("waiting", "CrashLoopBackOff", False, "restarted", ("terminated", 3)),
    "conditions": {"Initialized": True, "ContainersReady": False, "Ready": False},
    "init_log": "init done",
    "crasher_log": "crashing",
}


@dataclass
class Path_:
    name: str
    endpoint: str
    real: bool


def _answers(endpoint: str) -> bool:
    if not Path(endpoint.removeprefix("unix://")).exists():
        return False
    with CRIClient(endpoint, timeout=5) as client:
        try:
            client.version()
        except CRIError:
            return False
    return True


def _docker_unavailable() -> str | None:
    try:
        import docker

        from pycri_shims.docker import DockerShim  # noqa: F401
    except Exception as err:  # the shim is work in progress elsewhere
        return f"the docker shim does not load: {err}"
    try:
        client = docker.DockerClient(base_url="unix:///var/run/docker.sock", version="auto")
        client.ping()
        tags = {tag for image in client.images.list() for tag in image.tags}
        client.close()
    except Exception as err:
        return f"no Docker daemon answers: {err}"
    if "busybox:latest" not in tags:
        return "the Docker image busybox:latest is missing (scripts/setup-runtimes.sh)"
    return None


def _nerdctl_unavailable() -> str | None:
    try:
        from pycri_shims.nerdctl.testing import why_unavailable
    except Exception as err:
        return f"the nerdctl shim does not load: {err}"
    return why_unavailable()


class Server:
    """``python -m pycri.server.main --shim NAME`` on a unix socket, as a subprocess."""

    def __init__(self, shim: str, directory: Path) -> None:
        self.socket = directory / f"{shim}.sock"
        self.log = directory / f"{shim}.log"
        self.address = f"unix://{self.socket}"
        args = [sys.executable, "-m", "pycri.server.main", "--shim", shim]
        args += ["--listen", self.address, "--grace", "2", "--log-level", "warning"]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                args,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while not _answers(self.address):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"pycri-server --shim {shim} did not start: {self.tail()}")
            time.sleep(0.1)

    def tail(self) -> str:
        return self.log.read_text()[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def scratch() -> Iterator[Path]:
    # short: unix socket paths must stay under 108 bytes
    path = Path(tempfile.mkdtemp(prefix="pycri-kubelet-it-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["fake", "docker", "nerdctl", "containerd"])
def cri_path(request: pytest.FixtureRequest, scratch: Path) -> Iterator[Path_]:
    name = request.param
    if name == "containerd":
        require_real(_answers(CONTAINERD), f"containerd's CRI socket {CONTAINERD} does not answer")
        yield Path_(name, CONTAINERD, True)
        return
    if name == "docker":
        reason = _docker_unavailable()
        require_real(reason is None, reason or "")
    elif name == "nerdctl":
        reason = _nerdctl_unavailable()
        require_real(reason is None, reason or "")
    server = Server(name, scratch)
    try:
        yield Path_(name, server.address, name != "fake")
    finally:
        server.stop()


def _leftovers(client: CRIClient, node: str) -> list[str]:
    selector = {L.NODE: node}
    pods = client.list_pod_sandbox(
        cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
    ).items
    containers = client.list_containers(
        cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector=selector))
    ).containers
    return [p.id for p in pods] + [c.id for c in containers]


def _force_clean(client: CRIClient, node: str) -> None:
    selector = {L.NODE: node}
    for pod in client.list_pod_sandbox(
        cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
    ).items:
        try:
            client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
            client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
        except CRIError:
            continue


def _wait(check: Callable[[], bool], timeout: float, what: str, status: Callable[[], Any]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}: {status()}")
        time.sleep(0.2)


def _log_lines(status_log: Path) -> list[str]:
    from pycri.core.logs import parse_log_line

    if not status_log.exists():
        return []
    return [parse_log_line(raw).message.decode() for raw in status_log.read_bytes().splitlines()]


def summarize(status: PodStatus, logs: Path, uid: str) -> dict[str, Any]:
    by_name = {s.name: s for s in (*status.init_container_statuses, *status.container_statuses)}
    init, web, client, crasher = (by_name[n] for n in ("init", "web", "client", "crasher"))
    last = crasher.last_state
    pod_logs = logs / f"kubelet-it_sidecars_{uid}"
    return {
        "phase": status.phase,
        "ready": status.ready,
        "init": (init.state.state, init.state.reason, init.state.exit_code),
        "web": (web.state.state, web.ready, web.restart_count),
        "client": (client.state.state, client.ready, client.restart_count),
        "crasher": (
            crasher.state.state,
            crasher.state.reason,
            crasher.ready,
            "restarted" if crasher.restart_count >= 1 else "never restarted",
            (last.state, last.exit_code) if last else None,
        ),
        "conditions": {
            c.type: c.status
            for c in status.conditions
            if c.type in ("Initialized", "ContainersReady", "Ready")
        },
        "init_log": " ".join(_log_lines(pod_logs / "init" / "0.log")),
        "crasher_log": " ".join(_log_lines(pod_logs / "crasher" / "0.log")),
    }


def test_the_same_pod_on_every_path(cri_path: Path_, scratch: Path) -> None:
    node = f"it-{RUN}-{cri_path.name}"
    client = CRIClient(cri_path.endpoint, timeout=60)
    kubelet = Kubelet(
        client,
        manifest_dir=scratch / "manifests",
        root_dir=scratch / "root",
        log_root=scratch / "logs",
        node_name=node,
    )
    stop = threading.Event()
    loop = threading.Thread(target=kubelet.run_forever, args=(stop,), daemon=True)
    try:
        kubelet.apply(POD)
        loop.start()

        def status() -> PodStatus:
            return kubelet.pod_status("sidecars", "kubelet-it")

        def settled() -> bool:
            s = status()
            names = {c.name: c for c in s.container_statuses}
            return (
                s.phase == "Running"
                and names["web"].ready
                and names["client"].ready
                and names["crasher"].restart_count >= 1
                and names["crasher"].state.reason == "CrashLoopBackOff"
            )

        _wait(settled, 90, "web and client ready and the crasher in back-off", status)
        info = kubelet.pod("sidecars", "kubelet-it")
        assert info is not None
        summary = summarize(status(), scratch / "logs", info.uid)
        assert summary == EXPECTED
        shared = scratch / "root/pods" / info.uid / "volumes/kubernetes.io~empty-dir/shared"
        if cri_path.real:
            # the init container wrote into the emptyDir on the node
            assert (shared / "index.html").read_text() == "hello-from-init\n"
            # the client fetched it from the web container over localhost, into the emptyDir
            _wait(lambda: (shared / "fetched").exists(), 30, "the client's fetch", lambda: None)
            assert (shared / "fetched").read_text() == "hello-from-init\n"
            running = {c.name: c for c in info.observed.containers if c.running}  # type: ignore[union-attr]
            seen = client.exec_sync(
                cri.ExecSyncRequest(
                    container_id=running["client"].id, cmd=["cat", "/shared/fetched"], timeout=10
                )
            )
            assert seen.stdout == b"hello-from-init\n"
        # the crasher keeps being restarted with back-off
        _wait(
            lambda: status().container_statuses[2].restart_count >= 2,
            30,
            "the restart after the 10 s back-off",
            status,
        )
    finally:
        stop.set()
        loop.join(30)
        try:
            assert kubelet.delete("sidecars", "kubelet-it", grace_period=2)
            assert _leftovers(client, node) == []
            assert not (scratch / "root/pods").exists() or not any(
                (scratch / "root/pods").iterdir()
            )
            assert not any((scratch / "logs").iterdir())
        finally:
            _force_clean(client, node)
            kubelet.close()
            client.close()
