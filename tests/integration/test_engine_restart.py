"""The engine itself restarted under a running pycri-server: UNAVAILABLE meanwhile, then working.

Each test starts a real daemon of its own (containerd for the nerdctl shim,
dockerd for the docker shim) in a scratch directory, so stopping it disturbs
no other test or session. The daemon is stopped with SIGTERM, as a package
upgrade or ``systemctl restart`` would, and started again with the same
configuration; pycri-server keeps running throughout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.logs import parse_log_line
from pycri.errors import UnavailableError
from pycri.testing import require_real

pytestmark = pytest.mark.real

BUSYBOX = "docker.io/library/busybox:latest"
PAUSE = "registry.k8s.io/pause:3.9"
TICKER = "i=0; while true; do echo n $i; i=$((i+1)); sleep 0.05; done"
MAIN_CONTAINERD = "/run/containerd/containerd.sock"
MAIN_DOCKER = "/var/run/docker.sock"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


class PrivateDaemon:
    """A real engine daemon of this test's own, in ``root``."""

    shim = ""
    #: whether running containers outlive the daemon's stop
    containers_survive = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / f"{self.shim}-engine.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def socket(self) -> Path:
        raise NotImplementedError

    def shim_options(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def load_images(self) -> None:
        """Give the daemon busybox and pause, from the machine's own engine."""
        raise NotImplementedError

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        wait_for(self._up, 60, f"{self.argv()[0]} to answer")

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the engine exited: {self.log.read_text()[-2000:]}")
        return self.socket().exists() and self.answers()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def forget(self) -> None:
        """After the last stop: remove what the daemon keeps outside its root."""

    def stop(self) -> None:
        """SIGTERM and wait, as a service manager does."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(20)


class PrivateContainerd(PrivateDaemon):
    shim = "nerdctl"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.config = root / "containerd.toml"
        self.config.write_text(
            "version = 2\n"
            f'root = "{root}/root"\n'
            f'state = "{root}/state"\n'
            # nerdctl needs no CRI plugin; leaving it out keeps this one small
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{root}/containerd.sock"\n'
            f'[ttrpc]\n  address = "{root}/containerd.sock.ttrpc"\n'
        )

    def argv(self) -> list[str]:
        return ["containerd", "--config", str(self.config)]

    def socket(self) -> Path:
        return self.root / "containerd.sock"

    def nerdctl(self, *args: str, address: str | None = None) -> str:
        argv = ["nerdctl", "--address", address or str(self.socket()), "--namespace", "pycri"]
        done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def answers(self) -> bool:
        done = subprocess.run(
            ["nerdctl", "--address", str(self.socket()), "--namespace", "pycri", "version"],
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0

    def load_images(self) -> None:
        archive = self.root / "images.tar"
        self.nerdctl("save", "-o", str(archive), BUSYBOX, PAUSE, address=MAIN_CONTAINERD)
        self.nerdctl("load", "-i", str(archive))
        archive.unlink()

    def shim_options(self) -> list[str]:
        return [f"address={self.socket()}", f"containerd_root={self.root}/root"]


class PrivateDockerd(PrivateDaemon):
    """dockerd with live-restore on the machine's containerd, in a namespace of its own.

    It gets a bridge of its own and writes no iptables rules, so it cannot
    collide with the main dockerd; the pods here use the node's network.
    (``--bridge=none`` is no way out: dockerd then deletes ``docker0``,
    the main daemon's bridge.)
    """

    shim = "docker"
    namespace = "pycri-restart"
    bridge = "pycri-rs0"

    def start(self) -> None:
        if not Path(f"/sys/class/net/{self.bridge}").exists():
            for args in (
                ["link", "add", self.bridge, "type", "bridge"],
                ["addr", "add", "10.213.213.1/24", "dev", self.bridge],
                ["link", "set", self.bridge, "up"],
            ):
                subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)
        super().start()

    def argv(self) -> list[str]:
        return [*self.common_argv(), "--live-restore"]

    def common_argv(self) -> list[str]:
        return [
            "dockerd",
            f"--data-root={self.root}/data",
            f"--exec-root={self.root}/exec",
            f"--pidfile={self.root}/dockerd.pid",
            f"--host=unix://{self.socket()}",
            f"--containerd={MAIN_CONTAINERD}",
            f"--containerd-namespace={self.namespace}",
            f"--containerd-plugins-namespace={self.namespace}-plugins",
            f"--bridge={self.bridge}",
            "--iptables=false",
            "--ip6tables=false",
        ]

    def socket(self) -> Path:
        return self.root / "docker.sock"

    def docker(self, *args: str, host: str | None = None) -> str:
        argv = ["docker", "--host", f"unix://{host or self.socket()}"]
        done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def answers(self) -> bool:
        done = subprocess.run(
            ["docker", "--host", f"unix://{self.socket()}", "version"],
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0

    def load_images(self) -> None:
        archive = self.root / "images.tar"
        self.docker("save", "-o", str(archive), BUSYBOX, PAUSE, host=MAIN_DOCKER)
        self.docker("load", "-i", str(archive))
        archive.unlink()

    def shim_options(self) -> list[str]:
        return [f"docker_host=unix://{self.socket()}"]

    def forget(self) -> None:
        subprocess.run(["ip", "link", "delete", self.bridge], check=False, capture_output=True)
        # refused while the namespace still holds anything: a leak shows up here
        done = subprocess.run(
            ["ctr", "--address", MAIN_CONTAINERD, "namespaces", "remove", self.namespace],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"containerd namespace {self.namespace}: {done.stderr}"


class PrivateDockerdStoppingContainers(PrivateDockerd):
    """Docker's default: stopping dockerd stops (SIGTERM, then SIGKILL) every container."""

    containers_survive = False
    namespace = "pycri-restart-stops"

    def argv(self) -> list[str]:
        return self.common_argv()


ENGINES: dict[str, type[PrivateDaemon]] = {
    "nerdctl": PrivateContainerd,
    "docker-live-restore": PrivateDockerd,
    "docker": PrivateDockerdStoppingContainers,
}


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Iterator[PrivateDaemon]:
    kind = ENGINES[str(request.param)]
    needs = {"nerdctl": ["containerd", "nerdctl"], "docker": ["dockerd", "docker"]}[kind.shim]
    missing = [tool for tool in [*needs, "ctr", "ip"] if shutil.which(tool) is None]
    if missing or not Path({"nerdctl": MAIN_CONTAINERD, "docker": MAIN_DOCKER}[kind.shim]).exists():
        require_real(False, f"{kind.shim}: needs {needs} and the main daemon (setup-runtimes.sh)")
    # short: unix socket paths must stay under 108 bytes
    bridges_before = host_bridges()
    root = Path(tempfile.mkdtemp(prefix="pycri-restart-"))
    daemon = kind(root)
    try:
        daemon.start()
        daemon.load_images()
        yield daemon
    finally:
        daemon.stop()
        # dockerd with live-restore leaves its own root and netns mounts on purpose
        for mount in reversed(mounts_under(root)):
            subprocess.run(["umount", mount], check=False, capture_output=True)
        left = mounts_under(root)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"mounts left behind: {left}"
        daemon.forget()
        # nothing of the machine's own daemons may go (dockerd can delete docker0)
        assert host_bridges() >= bridges_before - {PrivateDockerd.bridge}


def host_bridges() -> set[str]:
    return {path.parent.name for path in Path("/sys/class/net").glob("*/bridge")}


def mounts_under(root: Path) -> list[str]:
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return [point for point in points if point.startswith(f"{root}/")]


class Server:
    def __init__(self, engine: PrivateDaemon) -> None:
        self.socket = engine.root / "cri.sock"
        self.log = engine.root / "server.log"
        argv = [sys.executable, "-m", "pycri.server.main", "--shim", engine.shim]
        for option in engine.shim_options():
            argv += ["-O", option]
        # the pods share the node's network: the private dockerd has no bridge
        argv += ["--allow-privileged", "--listen", f"unix://{self.socket}", "--grace", "1"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log)
        wait_for(self.socket.exists, 60, "pycri-server to listen")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(20)
        assert "Traceback" not in self.log.read_text(), self.log.read_text()[-3000:]


def numbers(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(parse_log_line(raw).message.split()[1]) for raw in path.read_bytes().splitlines()]


def runtime_ready(client: CRIClient) -> bool:
    conditions = {c.type: c for c in client.status().status.conditions}
    return bool(conditions["RuntimeReady"].status)


def test_engine_restarted_under_a_running_server(engine: PrivateDaemon) -> None:
    server = Server(engine)
    client = CRIClient(f"unix://{server.socket}", timeout=60)
    uid = uuid.uuid4().hex
    pod = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="restart", namespace="pycri-restart", uid=uid),
        log_directory=str(engine.root / "logs"),
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(
                namespace_options=cri.NamespaceOption(network=cri.NODE)
            )
        ),
    )
    pod_id = ""

    def create(name: str, command: list[str]) -> str:
        return client.create_container(
            cri.CreateContainerRequest(
                pod_sandbox_id=pod_id,
                config=cri.ContainerConfig(
                    metadata=cri.ContainerMetadata(name=name),
                    image=cri.ImageSpec(image=BUSYBOX),
                    command=command,
                    log_path=f"{name}.log",
                    linux=cri.LinuxContainerConfig(),
                ),
                sandbox_config=pod,
            )
        ).container_id

    try:
        pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod)).pod_sandbox_id
        ticker = create("ticker", ["sh", "-c", TICKER])
        client.start_container(cri.StartContainerRequest(container_id=ticker))
        log = Path(pod.log_directory) / "ticker.log"
        wait_for(lambda: len(numbers(log)) >= 10, 30, "ticker lines")

        engine.stop()
        started_down = time.monotonic()
        with pytest.raises(UnavailableError) as caught:
            client.list_pod_sandbox()
        assert str(engine.socket()) in caught.value.message  # says which engine is down
        with pytest.raises(UnavailableError):
            client.container_status(cri.ContainerStatusRequest(container_id=ticker))
        with pytest.raises(UnavailableError):
            create("refused", ["true"])
        assert not runtime_ready(client)
        assert time.monotonic() - started_down < 30, "an outage must be reported promptly"

        engine.start()
        # the same server, not restarted: it reaches the engine again
        wait_for(lambda: runtime_ready(client), 30, "RuntimeReady after the restart")
        pods = [p for p in client.list_pod_sandbox().items if p.id == pod_id]
        if not engine.containers_survive:
            # what the engine did is what the CRI reports: the kubelet recreates the pod
            assert [p.state for p in pods] == [cri.SANDBOX_NOTREADY]
            gone = client.container_status(cri.ContainerStatusRequest(container_id=ticker)).status
            assert gone.state == cri.CONTAINER_EXITED
            assert gone.exit_code in (128 + 9, 128 + 15)  # killed by dockerd's stop
            seen = numbers(log)
            assert seen == list(range(len(seen))), "log lines lost or written twice"
            return
        assert [p.state for p in pods] == [cri.SANDBOX_READY]
        status = client.container_status(cri.ContainerStatusRequest(container_id=ticker)).status
        assert status.state == cri.CONTAINER_RUNNING  # the container outlived its engine
        answer = client.exec_sync(
            cri.ExecSyncRequest(container_id=ticker, cmd=["echo", "still here"], timeout=30)
        )
        assert (answer.exit_code, answer.stdout) == (0, b"still here\n")
        later = create("later", ["sh", "-c", "echo made after the restart"])
        client.start_container(cri.StartContainerRequest(container_id=later))
        lines_now = len(numbers(log))
        wait_for(lambda: len(numbers(log)) > lines_now + 20, 30, "the log to continue")

        client.stop_container(cri.StopContainerRequest(container_id=ticker, timeout=0))
        seen = numbers(log)
        assert seen == list(range(len(seen))), "log lines lost or written twice"
    finally:
        try:
            if pod_id:
                if not engine.running():
                    engine.start()  # a check failed during the outage: clean up all the same
                client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
                client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        finally:
            client.close()
            server.stop()
    assert not os.path.exists(server.socket)
