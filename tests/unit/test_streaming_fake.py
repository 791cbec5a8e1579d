"""The fake runtime's Exec, Attach and PortForward, driven through the shim interface."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.errors import UnavailableError
from pycri.streaming.streams import Pipe, ResizeQueue, StreamIO, TerminalSize
from pycri_shims.fake import FakeShim

TIMEOUT = 10.0


class Screen:
    """Collects what a session writes; ``wait_for`` a substring."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        with self.cond:
            self.data += data
            self.cond.notify_all()

    def close(self) -> None:
        self.closed = True

    def wait_for(self, text: bytes) -> bytes:
        with self.cond:
            assert self.cond.wait_for(lambda: text in self.data, TIMEOUT), self.data
            return self.data


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def fake() -> Iterator[FakeShim]:
    before = set(threading.enumerate())
    shim = FakeShim(preload="busybox,nginx")
    yield shim
    shim.close()

    def leftovers() -> list[str]:
        alive = set(threading.enumerate()) - before
        return [t.name for t in alive if t.name.startswith("pycri-")]

    wait_for(lambda: not leftovers(), "the session threads to end")
    assert leftovers() == []


def run_pod(fake: FakeShim, tmp_path: Path, name: str = "web") -> str:
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace="default", uid=name),
        hostname=name,
        log_directory=str(tmp_path / name),
    )
    return fake.run_pod_sandbox(config, "")


def run_container(
    fake: FakeShim,
    pod_id: str,
    name: str,
    command: list[str],
    image: str = "busybox",
    *,
    stdin: bool = False,
    stdin_once: bool = False,
    tty: bool = False,
) -> str:
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name),
        image=cri.ImageSpec(image=image),
        command=command,
        log_path=f"{name}.log",
        stdin=stdin,
        stdin_once=stdin_once,
        tty=tty,
    )
    container_id = fake.create_container(pod_id, config, cri.PodSandboxConfig())
    fake.start_container(container_id)
    return container_id


@pytest.fixture
def pod(fake: FakeShim, tmp_path: Path) -> str:
    return run_pod(fake, tmp_path)


@pytest.fixture
def ctr(fake: FakeShim, pod: str) -> str:
    return run_container(fake, pod, "app", ["sleep", "3600"])


def start_exec(
    fake: FakeShim, container_id: str, cmd: list[str], *, tty: bool = False, stdin: bool = True
) -> tuple[StreamIO, Screen, Screen, list[int], threading.Thread]:
    out, err = Screen(), Screen()
    io = StreamIO(
        stdin=Pipe() if stdin else None,
        stdout=out,
        stderr=None if tty else err,
        tty=tty,
        resize=ResizeQueue() if tty else None,
    )
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(fake.exec_stream(container_id, cmd, io)))
    thread.start()
    return io, out, err, codes, thread


def finish(thread: threading.Thread, codes: list[int]) -> int:
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    return codes[0]


# -- exec ------------------------------------------------------------------------------------


def test_exec_cat_copies_stdin_until_eof(fake: FakeShim, ctr: str) -> None:
    io, out, _, codes, thread = start_exec(fake, ctr, ["cat"])
    assert io.stdin is not None
    io.stdin.write(b"one\n")
    out.wait_for(b"one\n")  # streamed as it arrives, not at the end
    io.stdin.write(b"two\n")
    io.stdin.close_write()
    assert finish(thread, codes) == 0
    assert out.data == b"one\ntwo\n"


def test_exec_sh_without_a_tty_runs_lines_as_they_come(fake: FakeShim, ctr: str) -> None:
    io, out, err, codes, thread = start_exec(fake, ctr, ["sh"])
    assert io.stdin is not None
    io.stdin.write(b"for i in 1 2\n")  # an unfinished loop waits for its next lines
    io.stdin.write(b"do echo n$i; done\necho oops >&2\n")
    out.wait_for(b"n1\nn2\n")
    io.stdin.write(b"read name; echo hello $name\nworld\nexit 4\n")
    assert finish(thread, codes) == 4
    assert out.data == b"n1\nn2\nhello world\n"
    assert err.data == b"oops\n"
    assert b"/ #" not in out.data  # no prompt without a terminal


def test_exec_without_stdin_gets_an_empty_one(fake: FakeShim, ctr: str) -> None:
    _, out, _, codes, thread = start_exec(fake, ctr, ["sh", "-c", "cat; echo done"], stdin=False)
    assert finish(thread, codes) == 0
    assert out.data == b"done\n"


def test_exec_with_a_tty_is_an_interactive_shell(fake: FakeShim, ctr: str) -> None:
    io, out, _, codes, thread = start_exec(fake, ctr, ["sh"], tty=True)
    assert io.stdin is not None
    assert io.resize is not None
    out.wait_for(b"/ # ")
    io.stdin.write(b"echo hix\x7f $((6*7))\r")  # DEL erases the x
    out.wait_for(b"hi 42\r\n/ # ")
    io.resize.put(TerminalSize(132, 50))
    time.sleep(0.4)  # the resize is applied by a watcher
    io.stdin.write(b"stty size; tty\r")
    out.wait_for(b"50 132\r\n/dev/pts/0\r\n")
    io.stdin.write(b"sleep 30\r")
    time.sleep(0.2)
    io.stdin.write(b"\x03")  # ^C ends sleep, not the shell
    out.wait_for(b"^C\r\n/ # ")
    io.stdin.write(b"echo status $?\r")
    out.wait_for(b"status 130")
    io.stdin.write(b"\x04")  # ^D on an empty line: end of input
    assert finish(thread, codes) == 0
    assert out.data.startswith(b"/ # echo hix\x08 \x08 $((6*7))\r\nhi 42\r\n")


def test_exec_is_killed_when_the_client_leaves(fake: FakeShim, ctr: str) -> None:
    io, _, _, codes, thread = start_exec(fake, ctr, ["sleep", "60"])
    time.sleep(0.1)
    io.cancelled.set()
    assert finish(thread, codes) == 137


def test_exec_dies_with_its_container(fake: FakeShim, ctr: str) -> None:
    _, _, _, codes, thread = start_exec(fake, ctr, ["sleep", "60"])
    time.sleep(0.1)
    fake.stop_container(ctr, 0)
    assert finish(thread, codes) == 137


# -- attach ----------------------------------------------------------------------------------


def attach(fake: FakeShim, container_id: str, io: StreamIO) -> threading.Thread:
    thread = threading.Thread(target=fake.attach, args=(container_id, io))
    thread.start()
    return thread


def test_attach_streams_output_from_now_on(fake: FakeShim, pod: str, tmp_path: Path) -> None:
    script = "i=0; while true; do i=$((i+1)); echo tick $i; echo tock $i >&2; sleep 0.05; done"
    ticker = run_container(fake, pod, "ticker", ["sh", "-c", script])
    log = tmp_path / "web" / "ticker.log"
    wait_for(lambda: b"tick 3\n" in log.read_bytes(), "some output before attaching")
    out, err = Screen(), Screen()
    io = StreamIO(stdout=out, stderr=err)
    thread = attach(fake, ticker, io)
    out.wait_for(b"tick")
    err.wait_for(b"tock")
    io.cancelled.set()  # the client leaves; the container runs on
    thread.join(TIMEOUT)
    assert b"tick 1\n" not in out.data  # no replay: that is what logs are for
    assert fake.container_status(ticker, False)[0].state == cri.CONTAINER_RUNNING


def test_attach_feeds_stdin_and_stdin_once_closes_it(fake: FakeShim, pod: str) -> None:
    catter = run_container(fake, pod, "cat", ["cat"], stdin=True, stdin_once=True)
    out = Screen()
    io = StreamIO(stdin=Pipe(), stdout=out, stderr=Screen())
    thread = attach(fake, catter, io)
    assert io.stdin is not None
    io.stdin.write(b"through attach\n")
    out.wait_for(b"through attach\n")
    io.stdin.close_write()  # stdin_once: the container's stdin closes, cat ends
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert fake.container_status(catter, False)[0].exit_code == 0


def test_attach_to_a_tty_shell(fake: FakeShim, pod: str, tmp_path: Path) -> None:
    shell = run_container(fake, pod, "shell", ["sh"], stdin=True, tty=True)
    out = Screen()
    io = StreamIO(stdin=Pipe(), stdout=out, tty=True, resize=ResizeQueue())
    thread = attach(fake, shell, io)
    assert io.stdin is not None
    io.stdin.write(b"hostname\r")
    out.wait_for(b"hostname\r\nweb\r\n/ # ")
    io.stdin.write(b"exit 3\r")
    thread.join(TIMEOUT)
    assert fake.container_status(shell, False)[0].exit_code == 3
    assert b"/ # hostname" in (tmp_path / "web" / "shell.log").read_bytes()


# -- port forward ------------------------------------------------------------------------------


class Client:
    """The client's end of a forwarded connection, as a socket pair."""

    def __init__(self) -> None:
        self.mine, theirs = socket.socketpair()
        self.theirs = theirs
        self.input = Pipe()
        self.cancelled = threading.Event()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        while data := self.theirs.recv(65536):
            self.input.write(data)
        self.input.close_write()

    def read(self, size: int = 65536, timeout: float | None = None) -> bytes:
        return self.input.read(size, timeout)

    def write(self, data: bytes) -> None:
        self.theirs.sendall(data)

    def close(self) -> None:
        self.theirs.shutdown(socket.SHUT_WR)

    def dispose(self) -> None:
        self._reader.join(TIMEOUT)
        self.mine.close()
        self.theirs.close()


def http_get(fake: FakeShim, pod: str, port: int, path: str = "/") -> bytes:
    client = Client()
    worker = threading.Thread(target=fake.port_forward, args=(pod, port, client))
    worker.start()
    client.mine.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    client.mine.shutdown(socket.SHUT_WR)
    response = b""
    while chunk := client.mine.recv(65536):
        response += chunk
    worker.join(TIMEOUT)
    assert not worker.is_alive()
    client.dispose()
    return response


def test_port_forward_reaches_simulated_web_servers(fake: FakeShim, pod: str) -> None:
    run_container(fake, pod, "nginx", [], image="nginx")
    script = "mkdir -p /www; echo served > /www/index.html; httpd -f -p 8080 -h /www"
    run_container(fake, pod, "busybox", ["sh", "-c", script])
    time.sleep(0.2)
    assert b"Welcome to nginx!" in http_get(fake, pod, 80)
    busybox = http_get(fake, pod, 8080)
    assert busybox.startswith(b"HTTP/1.1 200 OK\r\n")
    assert busybox.endswith(b"\r\n\r\nserved\n")
    assert http_get(fake, pod, 8080, "/missing").startswith(b"HTTP/1.1 404")
    refused = Client()
    with pytest.raises(UnavailableError, match="connection refused"):
        fake.port_forward(pod, 9999, refused)
    refused.mine.close()
    refused.dispose()


def test_port_forward_to_nc_and_between_containers(fake: FakeShim, pod: str, ctr: str) -> None:
    listener = run_container(fake, pod, "nc", ["sh", "-c", "nc -l -p 9000; echo closed"])
    time.sleep(0.2)
    client = Client()
    worker = threading.Thread(target=fake.port_forward, args=(pod, 9000, client))
    worker.start()
    client.mine.sendall(b"over the wire\n")
    client.mine.close()  # the connection ends: nc exits
    worker.join(TIMEOUT)
    client.dispose()
    wait_for(lambda: fake.container_status(listener, False)[0].state == cri.CONTAINER_EXITED, "nc")
    run_container(fake, pod, "web", ["httpd", "-f", "-p", "8081", "-h", "/etc"])
    time.sleep(0.2)
    result = fake.exec_sync(ctr, ["wget", "-qO-", "http://localhost:8081/hostname"], 5)
    assert (result.exit_code, result.stdout) == (0, b"web\n")


def test_each_pod_has_its_own_ports(fake: FakeShim, pod: str, tmp_path: Path) -> None:
    run_container(fake, pod, "web", [], image="nginx")
    clash = run_container(fake, pod, "clash", [], image="nginx")
    wait_for(lambda: fake.container_status(clash, False)[0].state == cri.CONTAINER_EXITED, "exit")
    assert fake.container_status(clash, False)[0].exit_code == 1  # port 80 is taken
    other = run_pod(fake, tmp_path, "other")
    other_ctr = run_container(fake, other, "app", ["sleep", "60"])
    refused = fake.exec_sync(other_ctr, ["nc", "localhost", "80"], 5)
    assert refused.exit_code == 1
    assert b"Connection refused" in refused.stderr
    run_container(fake, other, "web", [], image="nginx")  # port 80 is free there
    time.sleep(0.2)
    assert b"nginx" in http_get(fake, other, 80)
