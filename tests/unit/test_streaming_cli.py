"""``pycrictl exec``, ``attach`` and ``port-forward`` against an in-process pycri-server."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.runtime import CRIRuntime
from pycri.server.server import CRIServer
from pycri.streaming.server import StreamingServer
from pycri.testing.conformance import wait_for
from pycri_shims.fake import FakeShim

TIMEOUT = 20.0


@dataclass
class Node:
    fake: FakeShim
    endpoint: str
    client: CRIClient
    pod: str
    logs: Path

    def run(
        self, name: str, command: list[str], *, stdin: bool = False, stdin_once: bool = False
    ) -> str:
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=name),
            image=cri.ImageSpec(image="busybox"),
            command=command,
            log_path=f"{name}.log",
            stdin=stdin,
            stdin_once=stdin_once,
        )
        ctr = self.client.create_container(
            cri.CreateContainerRequest(pod_sandbox_id=self.pod, config=config)
        ).container_id
        self.client.start_container(cri.StartContainerRequest(container_id=ctr))
        return ctr

    def pycrictl(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pycri.cli", "-r", self.endpoint, "-t", "10s", *args]


@pytest.fixture
def node() -> Iterator[Node]:
    fake = FakeShim()
    with tempfile.TemporaryDirectory(prefix="pycri-") as tmp, StreamingServer(fake) as streaming:
        runtime = CRIRuntime(fake, streaming=streaming)
        server = CRIServer(runtime, f"unix://{tmp}/cri.sock").start()
        client = CRIClient(server.address)
        try:
            config = cri.PodSandboxConfig(
                metadata=cri.PodSandboxMetadata(name="web", namespace="default", uid="u"),
                log_directory=f"{tmp}/logs",
            )
            pod = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
            yield Node(fake, server.address, client, pod, Path(tmp) / "logs")
        finally:
            client.close()
            server.stop(grace=0.5)
            runtime.close()


def run(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=TIMEOUT, check=False)


def test_exec_streams_output_and_exits_with_the_command(node: Node) -> None:
    ctr = node.run("app", ["sleep", "3600"])
    result = run(node.pycrictl("exec", ctr, "sh", "-c", "echo out; echo err >&2; exit 3"))
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_exec_i_pipes_stdin_to_the_end(node: Node) -> None:
    ctr = node.run("app", ["sleep", "3600"])
    result = run(node.pycrictl("exec", "-i", ctr, "sh"), b"echo from script\nexit 9\necho not\n")
    assert (result.returncode, result.stdout) == (9, b"from script\n")
    result = run(node.pycrictl("exec", "-i", ctr, "sh"), b"echo one\nwc -l\nexit 9\nthree\n")
    assert (result.returncode, result.stdout) == (0, b"one\n2\n")  # wc read the rest
    result = run(node.pycrictl("exec", "-i", ctr, "wc", "-c"), b"12345")
    assert (result.returncode, result.stdout) == (0, b"5\n")


def test_exec_t_needs_a_terminal(node: Node) -> None:
    ctr = node.run("app", ["sleep", "3600"])
    result = run(node.pycrictl("exec", "-it", ctr, "sh"))
    assert result.returncode == 1
    assert b"input is not a terminal" in result.stderr


class Terminal:
    """pycrictl in a pseudo-terminal, as a person would run it."""

    def __init__(self, args: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execvp(args[0], args)
        self.screen = b""

    def expect(self, text: bytes) -> None:
        deadline = time.monotonic() + TIMEOUT
        while text not in self.screen:
            assert time.monotonic() < deadline, self.screen
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.screen += os.read(self.fd, 4096)
                except OSError:
                    break  # the child exited
        assert text in self.screen, self.screen

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def resize(self, rows: int, cols: int) -> None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, signal.SIGWINCH)

    def exit_code(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def test_exec_it_is_an_interactive_terminal(node: Node) -> None:
    ctr = node.run("app", ["sleep", "3600"])
    term = Terminal(node.pycrictl("exec", "-it", ctr, "sh"))
    term.expect(b"/ # ")
    term.type(b"echo $((6*7))\r")
    term.expect(b"42\r\n/ # ")
    term.resize(33, 111)
    time.sleep(0.5)
    term.type(b"stty size\r")
    term.expect(b"33 111\r\n")
    term.type(b"exit 7\r")
    assert term.exit_code() == 7


def test_attach_follows_output_until_the_container_exits(node: Node) -> None:
    # the container prints once attach is there (the client's start-up takes
    # seconds on a loaded machine; a fixed sleep made this flaky)
    script = "until [ -e /go ]; do sleep 0.05; done; echo late; echo oops >&2"
    ctr = node.run("late", ["sh", "-c", script])
    attach = subprocess.Popen(
        node.pycrictl("attach", ctr), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: node.fake.attached(ctr) == 1, TIMEOUT, "pycrictl to attach")
        node.client.exec_sync(cri.ExecSyncRequest(container_id=ctr, cmd=["touch", "/go"]))
        stdout, stderr = attach.communicate(timeout=TIMEOUT)
    finally:
        if attach.poll() is None:
            attach.kill()
            attach.wait()
    assert (attach.returncode, stdout, stderr) == (0, b"late\n", b"oops\n")


def test_attach_i_feeds_the_containers_stdin(node: Node) -> None:
    ctr = node.run("cat", ["cat"], stdin=True, stdin_once=True)
    result = run(node.pycrictl("attach", "-i", ctr), b"typed in\n")
    assert (result.returncode, result.stdout) == (0, b"typed in\n")
    status = node.client.container_status(cri.ContainerStatusRequest(container_id=ctr)).status
    assert status.state == cri.CONTAINER_EXITED


def test_port_forward_until_interrupted(node: Node) -> None:
    script = "mkdir -p /www; echo via pycrictl > /www/index.html; httpd -f -p 8080 -h /www"
    node.run("web", ["sh", "-c", script])
    forward = subprocess.Popen(
        node.pycrictl("port-forward", node.pod, "0:8080"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline().decode()
        assert line.startswith("Forwarding from 127.0.0.1:")
        port = int(line.split(":")[1].split()[0])
        for _ in range(2):  # each connection gets its own URL
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                response = b""
                while chunk := conn.recv(4096):
                    response += chunk
            assert response.startswith(b"HTTP/1.1 200 OK")
            assert response.endswith(b"via pycrictl\n")
        forward.send_signal(signal.SIGINT)
        assert forward.wait(TIMEOUT) == 0
    finally:
        if forward.poll() is None:
            forward.kill()
            forward.wait()
        for stream in (forward.stdout, forward.stderr):
            if stream is not None:
                stream.close()


def test_port_forward_reports_a_missing_pod(node: Node) -> None:
    result = run(node.pycrictl("port-forward", "nosuchpod", "8080"))
    assert result.returncode == 1
    assert b"NotFound" in result.stderr
