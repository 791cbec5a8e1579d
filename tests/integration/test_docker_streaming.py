"""Interactive Exec and Attach on the Docker shim: what crictl cannot show.

A client that leaves mid-exec must leave no process behind (Docker itself
would keep it running), a terminal's exit code must come back, and a stopped
container must refuse with a clear error. ``test_streaming_crictl.py`` runs
the real crictl against the same code.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_docker_support import (
    container_config,
    docker_client,
    pod_config,
    remove_leftovers,
    scratch_dir,
    wait_for,
)
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.errors import FailedPreconditionError, NotFoundError
from pycri.streaming.server import StreamingServer
from pycri.streaming.streams import Pipe, ResizeQueue, StreamIO, TerminalSize
from pycri.testing import CollectedOutput
from pycri_shims.docker import DockerShim

pytestmark = pytest.mark.real

TIMEOUT = 30.0


@dataclass
class Node:
    shim: DockerShim
    runtime: CRIRuntime
    scratch: Path
    pods: list[str] = field(default_factory=list)

    def container(self, name: str, command: list[str], **fields: Any) -> str:
        """A started container in a pod of its own."""
        pod = pod_config(name, self.scratch)
        pod_id = self.shim.run_pod_sandbox(pod, "")
        self.pods.append(pod_id)
        config = container_config(name, command, linux=cri.LinuxContainerConfig(), **fields)
        container_id = self.shim.create_container(pod_id, config, pod)
        self.shim.start_container(container_id)
        return container_id

    def processes(self, container_id: str) -> str:
        result = self.shim.exec_sync(container_id, ["ps", "-o", "args"], 10)
        assert result.exit_code == 0, result.stderr
        return result.stdout.decode()

    def state(self, container_id: str) -> int:
        return int(self.shim.container_status(container_id, False)[0].state)


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    sdk = docker_client()
    shim = DockerShim()
    runtime = CRIRuntime(shim)
    with scratch_dir() as scratch:
        node = Node(shim, runtime, scratch / "logs")
        try:
            yield node
        finally:
            try:
                for pod_id in node.pods:  # the runtime's cascade: containers, then the pod
                    runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
                    runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
            finally:
                runtime.close()
                left = remove_leftovers(sdk)  # what removing the pods missed
                sdk.close()
    assert not left, f"containers left behind: {left}"


@pytest.fixture(scope="module")
def sleeper(node: Node) -> str:
    return node.container("sleeper", ["sleep", "3600"])


def run_in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(fn())
        except BaseException as err:  # handed to the test
            results.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


# -- a client that leaves ----------------------------------------------------------


@pytest.mark.parametrize("tty", [False, True], ids=["pipes", "tty"])
def test_client_leaving_mid_exec_kills_the_process(node: Node, sleeper: str, tty: bool) -> None:
    marker = "4321" if tty else "4322"
    script = f"sleep 1{marker} & sleep {marker}; echo never"
    io = StreamIO(
        stdin=Pipe(),
        stdout=CollectedOutput(),
        stderr=None if tty else CollectedOutput(),
        tty=tty,
        resize=ResizeQueue() if tty else None,
    )
    thread, results = run_in_thread(
        lambda: node.shim.exec_stream(sleeper, ["sh", "-c", script], io)
    )
    wait_for(lambda: f"sleep {marker}" in node.processes(sleeper), TIMEOUT, "the exec to run")
    io.cancelled.set()
    left_at = time.monotonic()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert time.monotonic() - left_at < 3, "exec_stream did not return promptly"
    assert results == [-1]
    # the process and its child are gone, not left running as Docker would leave them
    wait_for(lambda: marker not in node.processes(sleeper), 5, "the exec'd processes to die")
    assert node.state(sleeper) == cri.CONTAINER_RUNNING


def test_client_whose_output_fails_mid_exec_kills_the_process(node: Node, sleeper: str) -> None:
    stdout = CollectedOutput()
    io = StreamIO(stdout=stdout, stderr=CollectedOutput())
    script = "echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo second; sleep 4323"
    thread, results = run_in_thread(
        lambda: node.shim.exec_stream(sleeper, ["sh", "-c", script], io)
    )
    wait_for(lambda: stdout.data == b"first\n", TIMEOUT, "the first line")
    stdout.gone = True
    assert node.shim.exec_sync(sleeper, ["touch", "/tmp/go"], 10).exit_code == 0
    thread.join(TIMEOUT)
    assert results == [-1]
    wait_for(lambda: "sleep 4323" not in node.processes(sleeper), 5, "the exec'd process to die")


def test_websocket_client_hanging_up_mid_exec_kills_the_process(node: Node, sleeper: str) -> None:
    with StreamingServer(node.shim) as streaming:
        url = streaming.get_exec(
            cri.ExecRequest(
                container_id=sleeper, cmd=["sleep", "4324"], stdin=True, stdout=True, stderr=True
            )
        )
        with connect(
            url.replace("http://", "ws://"), subprotocols=[Subprotocol("v5.channel.k8s.io")]
        ):
            wait_for(lambda: "sleep 4324" in node.processes(sleeper), TIMEOUT, "the exec")
        # the hang-up reaches the shim as io.cancelled
        wait_for(lambda: "sleep 4324" not in node.processes(sleeper), 10, "the exec to die")


def test_client_leaving_an_attach_leaves_the_container_running(node: Node) -> None:
    ticker = node.container("ticker", ["sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    stdout = CollectedOutput()
    io = StreamIO(stdout=stdout, stderr=CollectedOutput())
    thread, results = run_in_thread(lambda: node.shim.attach(ticker, io))
    wait_for(lambda: stdout.data.count(b"tick\n") >= 3, TIMEOUT, "output through the attach")
    io.cancelled.set()
    thread.join(5)
    assert results == [None]
    time.sleep(0.5)
    assert node.state(ticker) == cri.CONTAINER_RUNNING


# -- exit codes and output -----------------------------------------------------------


def test_exec_with_a_tty_reports_the_exit_code(node: Node, sleeper: str) -> None:
    stdout = CollectedOutput()
    io = StreamIO(stdout=stdout, tty=True, resize=ResizeQueue())
    assert node.shim.exec_stream(sleeper, ["sh", "-c", "echo in a tty; exit 7"], io) == 7
    assert stdout.data == b"in a tty\r\n"  # the terminal turns \n into \r\n

    stdin, stdout = Pipe(), CollectedOutput()
    resize = ResizeQueue()
    resize.put(TerminalSize(width=91, height=33))  # before the exec starts, as clients do
    io = StreamIO(stdin=stdin, stdout=stdout, tty=True, resize=resize)
    stdin.write(b"stty size; exit 5\r")
    assert node.shim.exec_stream(sleeper, ["sh"], io) == 5
    assert b"33 91\r\n" in stdout.data

    # a terminal has no end of file: stdin's end is a ^D typed into it
    stdin, stdout = Pipe(), CollectedOutput()
    io = StreamIO(stdin=stdin, stdout=stdout, tty=True, resize=ResizeQueue())
    stdin.write(b"echo typed; (exit 6)\r")
    stdin.close_write()
    assert node.shim.exec_stream(sleeper, ["sh"], io) == 6
    assert b"typed\r\n" in stdout.data


@pytest.mark.parametrize(
    "keys",
    [b"\x10", b"\x10\x11", b"\x00\x1e\x1f\x00x"],
    ids=["ctrl-p", "ctrl-p-ctrl-q", "nul-rs-us"],
)
def test_terminal_keys_reach_the_process_at_once(node: Node, sleeper: str, keys: bytes) -> None:
    """Docker holds back what could start its detach keys and detaches on all of them. The CRI
    has no detach: ^P (readline's previous line) waited for the next key, and ^P ^Q ended the
    session with the process left running (kubernetes#71765)."""
    stdin, stdout = Pipe(), CollectedOutput()
    io = StreamIO(stdin=stdin, stdout=stdout, tty=True, resize=ResizeQueue())
    script = f"stty raw -echo; echo ready; head -c {len(keys)} | od -An -tx1; exit 3"
    thread, results = run_in_thread(
        lambda: node.shim.exec_stream(sleeper, ["sh", "-c", script], io)
    )
    wait_for(lambda: b"ready" in stdout.data, TIMEOUT, "the terminal to be raw")
    stdin.write(keys)
    thread.join(TIMEOUT)
    if thread.is_alive():
        io.cancelled.set()  # kills it: leave nothing behind
        thread.join(TIMEOUT)
        pytest.fail(f"the keys did not all reach the process: {stdout.data!r}")
    assert results == [3]
    assert " ".join(f"{byte:02x}" for byte in keys).encode() in stdout.data


def test_a_detached_exec_is_not_left_running(node: Node, sleeper: str) -> None:
    # whoever types all of Docker's detach keys ends the stream: the process must end with it
    stdin, stdout = Pipe(), CollectedOutput()
    io = StreamIO(stdin=stdin, stdout=stdout, tty=True, resize=ResizeQueue())
    script = "stty raw -echo; echo ready; sleep 4325"
    thread, results = run_in_thread(
        lambda: node.shim.exec_stream(sleeper, ["sh", "-c", script], io)
    )
    wait_for(lambda: b"ready" in stdout.data, TIMEOUT, "the terminal to be raw")
    stdin.write(b"\x00\x1e\x1f" * 2 + b"\x00\x1e")  # DETACH_KEYS
    thread.join(TIMEOUT)
    assert results == [126]  # Docker's code for an exec whose attach failed
    assert "sleep 4325" not in node.processes(sleeper)  # its terminal hung up


def test_exec_output_arrives_whole_and_in_order(node: Node, sleeper: str) -> None:
    # a short-lived process: its output may arrive with Docker's 101 answer
    for round_ in range(10):
        stdout, stderr = CollectedOutput(), CollectedOutput()
        io = StreamIO(stdout=stdout, stderr=stderr)
        assert node.shim.exec_stream(sleeper, ["echo", f"round {round_}"], io) == 0
        assert (bytes(stdout.data), bytes(stderr.data)) == (f"round {round_}\n".encode(), b"")
    # megabytes both ways: stdin is throttled, the framed output reassembled
    payload = bytes(range(256)) * (3 * 4096)
    stdin, stdout, stderr = Pipe(), CollectedOutput(), CollectedOutput()
    io = StreamIO(stdin=stdin, stdout=stdout, stderr=stderr)

    def feed() -> None:
        stdin.write(payload)
        stdin.close_write()

    feeder = threading.Thread(target=feed)
    feeder.start()
    script = "cat; head -c 2000000 /dev/zero >&2"
    assert node.shim.exec_stream(sleeper, ["sh", "-c", script], io) == 0
    feeder.join(TIMEOUT)
    assert hashlib.sha256(stdout.data).digest() == hashlib.sha256(payload).digest()
    assert bytes(stderr.data) == bytes(2000000)


def test_attach_keeps_going_after_stdin_ends_without_stdin_once(node: Node) -> None:
    # Docker ends an attach whose stdin is half-closed (unless the container has
    # StdinOnce): stdin's end must not cut the output short
    script = "read line; echo got $line; sleep 1; echo later"
    ctr = node.container("reader", ["sh", "-c", script], stdin=True)
    stdin, stdout = Pipe(), CollectedOutput()
    io = StreamIO(stdin=stdin, stdout=stdout, stderr=CollectedOutput())
    stdin.write(b"hello\n")
    stdin.close_write()
    node.shim.attach(ctr, io)
    assert bytes(stdout.data) == b"got hello\nlater\n"


def test_attach_stdin_once_with_a_tty_ends_with_stdin(node: Node) -> None:
    ctr = node.container("tty", ["sh"], stdin=True, stdin_once=True, tty=True)
    stdin, stdout, resize = Pipe(), CollectedOutput(), ResizeQueue()
    resize.put(TerminalSize(width=70, height=20))
    io = StreamIO(stdin=stdin, stdout=stdout, tty=True, resize=resize)
    stdin.write(b"stty size\r")
    stdin.close_write()
    node.shim.attach(ctr, io)  # returns: ^D ended the shell, and the container
    assert b"20 70\r\n" in stdout.data
    wait_for(lambda: node.state(ctr) == cri.CONTAINER_EXITED, TIMEOUT, "the exit")


def test_attach_passes_ctrl_p_on_at_once(node: Node) -> None:
    # the detach keys again (see test_terminal_keys_reach_the_process_at_once)
    script = "stty raw -echo; head -c 1 | od -An -tx1; sleep 1"
    ctr = node.container("keys", ["sh", "-c", script], stdin=True, tty=True)
    wait_for(lambda: "head -c 1" in node.processes(ctr), TIMEOUT, "the terminal to be raw")
    stdin, stdout = Pipe(), CollectedOutput()
    io = StreamIO(stdin=stdin, stdout=stdout, tty=True, resize=ResizeQueue())
    stdin.write(b"\x10")
    thread, results = run_in_thread(lambda: node.shim.attach(ctr, io))
    wait_for(lambda: b"10" in stdout.data, TIMEOUT, "^P to reach the container")
    thread.join(TIMEOUT)
    assert results == [None]


# -- errors ------------------------------------------------------------------------


def test_exec_and_attach_in_a_stopped_container_are_clear_errors(node: Node) -> None:
    ctr = node.container("done", ["true"])
    wait_for(lambda: node.state(ctr) == cri.CONTAINER_EXITED, TIMEOUT, "the exit")
    with pytest.raises(FailedPreconditionError, match="is not running"):
        node.shim.exec_stream(ctr, ["echo", "hi"], StreamIO(stdout=CollectedOutput()))
    with pytest.raises(FailedPreconditionError, match="not running"):
        node.shim.attach(ctr, StreamIO(stdout=CollectedOutput()))
    with pytest.raises(NotFoundError):
        node.shim.exec_stream("0" * 64, ["echo", "hi"], StreamIO(stdout=CollectedOutput()))
