"""Helpers shared by the Docker shim's integration tests (this module holds no tests).

Everything here tracks what it creates and removes it, in the docker-py
style: containers by their log paths (inside this run's scratch
directories), pulled images by name, files in temporary directories.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors

from pycri.api import api_pb2 as cri
from pycri.core.engine import KIND_LABEL
from pycri.testing import require_real

DOCKER_SOCK = "/var/run/docker.sock"
REGISTRY = "127.0.0.1:5000"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
BUSYBOX = "docker.io/library/busybox:latest"
REGISTRY_BUSYBOX = "127.0.0.1:5000/pycri/busybox:latest"
PAUSE = "registry.k8s.io/pause:3.9"
#: one id per test run, in pod names and labels, so runs never collide
RUN_ID = uuid.uuid4().hex[:8]
#: every file and log path of this run lies under a directory with this prefix
SCRATCH_PREFIX = f"pycri-docker-{RUN_ID}-"
_PATH_LABELS = ("io.kubernetes.container.logpath", "io.pycri.log-directory")


def docker_client() -> Any:
    """A Docker SDK client, or a skip (a failure under PYCRI_REQUIRE_REAL=1)."""
    reason = f"no Docker daemon answers at {DOCKER_SOCK} (scripts/setup-runtimes.sh)"
    try:
        client = docker.DockerClient(base_url=f"unix://{DOCKER_SOCK}", version="auto", timeout=60)
        client.ping()
    except Exception:
        require_real(False, reason)
        raise
    have = {tag for image in client.images.list() for tag in image.tags}
    for needed in ("busybox:latest", PAUSE):
        require_real(needed in have, f"the Docker image {needed} is missing (setup-runtimes.sh)")
    return client


def our_containers(client: Any) -> list[dict[str, Any]]:
    """This run's CRI containers: their log paths lie in this run's scratch dirs.

    Other runs (CI, a colleague) may share the daemon: theirs are not ours to remove.
    """
    found: list[dict[str, Any]] = client.api.containers(all=True, filters={"label": [KIND_LABEL]})
    marker = SCRATCH_PREFIX
    return [
        entry
        for entry in found
        if any(marker in (entry["Labels"].get(key) or "") for key in _PATH_LABELS)
    ]


def remove_leftovers(client: Any) -> list[str]:
    """Force-remove this run's containers; return their names."""
    names = []
    for entry in our_containers(client):
        names.append(entry["Names"][0])
        client.api.remove_container(entry["Id"], force=True, v=True)
    return names


def registry_image_id(repository: str, tag: str) -> str | None:
    """The image id (config digest) the local registry holds for repository:tag."""
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_V2}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            digest: str = json.load(answer)["config"]["digest"]
            return digest
    except (OSError, ValueError, KeyError):
        return None


def delete_from_registry(repository: str, tag: str) -> None:
    """Drop a tag this run pushed (the registry runs with storage.delete enabled)."""
    head = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFEST_V2},
    )
    with urllib.request.urlopen(head, timeout=10) as answer:
        digest = answer.headers["Docker-Content-Digest"]
    delete = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", method="DELETE"
    )
    urllib.request.urlopen(delete, timeout=10).close()


def require_distinct_pull_image(client: Any) -> None:
    """RemoveImage of the pulled image must not take busybox:latest with it.

    It removes every tag of the image id, so the registry's image has to be
    another image than the local busybox (setup-runtimes.sh pushes one with
    an extra label).
    """
    local = client.api.inspect_image("busybox:latest")["Id"]
    remote = registry_image_id("pycri/busybox", "latest")
    require_real(
        remote is not None and remote != local,
        f"{REGISTRY_BUSYBOX} is missing or is the local busybox:latest itself; removing it "
        "would remove busybox:latest (rerun scripts/setup-runtimes.sh)",
    )


def forget_pulled(client: Any) -> None:
    """The machine starts without the registry's image locally: leave it so."""
    try:
        client.api.remove_image(REGISTRY_BUSYBOX)
    except docker.errors.NotFound:
        pass


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A short temporary directory (unix socket paths must stay under 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class Server:
    """``python -m pycri.server.main --shim docker`` as a subprocess."""

    def __init__(self, socket_path: Path, *options: str) -> None:
        self.socket_path = socket_path
        self.address = f"unix://{socket_path}"
        self.options = options
        self.process: subprocess.Popen[str] | None = None
        self.log = socket_path.with_suffix(".log")

    def start(self) -> Server:
        args = [sys.executable, "-m", "pycri.server.main", "--shim", "docker"]
        for option in self.options:
            args += ["--shim-option", option]
        args += ["--listen", self.address, "--grace", "1"]
        with open(self.log, "a", encoding="utf-8") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, text=True)
        wait_for(self._ready, 30, "pycri-server to listen")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"pycri-server exited: {self.log.read_text()[-2000:]}")
        return self.socket_path.exists()

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)
        self.socket_path.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


class SocketProxy:
    """A unix socket that forwards to dockerd's; stop() makes "the daemon" vanish.

    The real daemon keeps running behind it, so an outage can be staged
    without touching the machine's dockerd.
    """

    def __init__(self, path: Path, target: str = DOCKER_SOCK) -> None:
        self.path = path
        self.target = target
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> SocketProxy:
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new clients and cut every forwarded stream."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self.path.unlink(missing_ok=True)
        with self._lock:
            doomed = set(self._open)
        for sock in doomed:  # their forwarding threads close them
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._forward, args=(client, upstream), daemon=True).start()

    def _forward(self, client: socket.socket, upstream: socket.socket) -> None:
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join()
        with self._lock:
            self._open -= {client, upstream}
        client.close()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):  # one side ended: end both, so the other pump stops
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def pod_config(name: str, log_dir: Path, **labels: str) -> cri.PodSandboxConfig:
    uid = uuid.uuid4().hex
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=f"{name}-{RUN_ID}", namespace="pycri-docker", uid=uid),
        hostname=name,
        log_directory=str(log_dir / uid),
        labels={"pycri.test": f"docker-{RUN_ID}", **labels},
        linux=cri.LinuxPodSandboxConfig(),
    )


def container_config(
    name: str, command: list[str], image: str = BUSYBOX, **fields: Any
) -> cri.ContainerConfig:
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name),
        image=cri.ImageSpec(image=image),
        command=command,
        log_path=f"{name}.log",
        labels={"pycri.test": f"docker-{RUN_ID}"},
        **fields,
    )


def environment_ok() -> None:
    """Fail fast, with the reason, when a test would need what the machine lacks."""
    if not os.path.exists(DOCKER_SOCK):
        require_real(False, f"{DOCKER_SOCK} does not exist (scripts/setup-runtimes.sh)")
