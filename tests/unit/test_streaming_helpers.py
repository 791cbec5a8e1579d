"""The helpers shims build on: pipes, splice, host processes in a pty, network namespaces."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from pycri.errors import UnavailableError
from pycri.streaming.netns import connect_in_netns, netns_of_pid
from pycri.streaming.process import run_attached
from pycri.streaming.pump import splice
from pycri.streaming.streams import Pipe, ResizeQueue, StreamIO, TerminalSize
from pycri.testing import CollectedOutput, require_real

TIMEOUT = 10.0


def test_pipe_reads_in_order_blocks_and_ends() -> None:
    pipe = Pipe(limit=4)
    pipe.write(b"abc")
    assert pipe.read(2) == b"ab"
    assert pipe.read() == b"c"
    with pytest.raises(TimeoutError):
        pipe.read(timeout=0.01)
    writer = threading.Thread(target=pipe.write, args=(b"0123456789",))
    pipe.write(b"full")
    writer.start()  # blocks: the pipe is full
    time.sleep(0.05)
    assert writer.is_alive()
    assert pipe.read() == b"full"
    writer.join(TIMEOUT)
    pipe.close_write()
    assert b"".join(pipe) == b"0123456789"
    assert pipe.at_eof


def test_closing_a_pipe_drops_data_and_unblocks_writers() -> None:
    pipe = Pipe(limit=1)
    pipe.write(b"x")
    writer = threading.Thread(target=pipe.write, args=(b"y",))
    writer.start()
    pipe.close()
    writer.join(TIMEOUT)
    assert not writer.is_alive()
    assert pipe.read() == b""


def test_resize_queue() -> None:
    sizes = ResizeQueue()
    sizes.put(TerminalSize(80, 24))
    assert sizes.latest == TerminalSize(80, 24)
    assert sizes.get(timeout=0) == TerminalSize(80, 24)
    assert sizes.get(timeout=0.01) is None
    sizes.put(TerminalSize(1, 2))
    sizes.close()
    assert list(sizes) == [TerminalSize(1, 2)]
    assert sizes.closed


class Connection:
    def __init__(self) -> None:
        self.input = Pipe()
        self.output = CollectedOutput()
        self.cancelled = threading.Event()
        self.closed = False

    def read(self, size: int = 65536, timeout: float | None = None) -> bytes:
        return self.input.read(size, timeout)

    def write(self, data: bytes) -> None:
        self.output.write(data)

    def close(self) -> None:
        self.closed = True


def test_splice_half_closes_and_ends_with_the_socket_side() -> None:
    ours, server = socket.socketpair()
    conn = Connection()
    worker = threading.Thread(target=splice, args=(conn, ours))
    worker.start()
    conn.input.write(b"request")
    conn.input.close_write()  # the client has sent everything...
    received = b""
    while chunk := server.recv(1024):  # ...so the server sees EOF after the request
        received += chunk
    assert received == b"request"
    server.sendall(b"response")
    server.close()
    worker.join(TIMEOUT)
    assert conn.output.data == b"response"
    assert conn.closed


def test_splice_stops_when_the_client_leaves() -> None:
    ours, server = socket.socketpair()
    conn = Connection()
    worker = threading.Thread(target=splice, args=(conn, ours))
    worker.start()
    conn.cancelled.set()
    worker.join(TIMEOUT)
    assert not worker.is_alive()
    assert server.recv(10) == b""  # our end was closed
    server.close()


def test_run_attached_without_a_tty() -> None:
    out, err = CollectedOutput(), CollectedOutput()
    io = StreamIO(stdin=Pipe(), stdout=out, stderr=err)
    assert io.stdin is not None
    io.stdin.write(b"line\n")
    io.stdin.close_write()
    script = "read x; echo got $x; echo oops >&2; exit 3"
    assert run_attached(["sh", "-c", script], io) == 3
    assert (out.data, err.data) == (b"got line\n", b"oops\n")


def test_run_attached_in_a_pty_with_resizes() -> None:
    out = CollectedOutput()
    io = StreamIO(stdin=Pipe(), stdout=out, tty=True, resize=ResizeQueue())
    assert io.stdin is not None
    assert io.resize is not None
    io.resize.put(TerminalSize(100, 30))
    script = "stty size; tty >/dev/null && echo tty; read x; stty size; exit 5"
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(run_attached(["sh", "-c", script], io)))
    worker.start()
    deadline = time.monotonic() + TIMEOUT
    while b"tty" not in out.data and time.monotonic() < deadline:
        time.sleep(0.01)
    io.resize.put(TerminalSize(120, 40))
    time.sleep(0.5)
    io.stdin.write(b"go\n")
    worker.join(TIMEOUT)
    assert result == [5]
    assert b"30 100" in out.data
    assert b"40 120" in out.data


def test_run_attached_types_the_end_of_input_until_the_program_ends() -> None:
    # A ^D that reaches a terminal before its program has set it up is lost (busybox sh
    # hung on it); the end of stdin is typed again until the program ends.
    out = CollectedOutput()
    io = StreamIO(stdin=Pipe(), stdout=out, tty=True, resize=ResizeQueue())
    assert io.stdin is not None
    io.stdin.write(b"typed ahead")
    io.stdin.close_write()
    # the raw terminal hands every ^D over: this one waits for a second
    script = (
        "import os, sys\n"
        "seen = b''\n"
        "while seen.count(b'\\x04') < 2: seen += os.read(0, 64)\n"
        "print(seen.count(b'typed ahead'))\n"
    )
    assert run_attached([sys.executable, "-c", script], io) == 0
    assert out.data == b"1\n"


def test_run_attached_stops_the_process_when_the_client_leaves() -> None:
    io = StreamIO(stdout=CollectedOutput(), stderr=CollectedOutput())
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(run_attached(["sleep", "30"], io)))
    worker.start()
    time.sleep(0.1)
    io.cancelled.set()
    worker.join(TIMEOUT)
    assert result == [128 + 15]  # SIGTERM


def test_run_attached_hands_stderr_to_the_caller() -> None:
    # without a tty: instead of io.stderr
    out, err, own = CollectedOutput(), CollectedOutput(), CollectedOutput()
    io = StreamIO(stdout=out, stderr=err)
    assert run_attached(["sh", "-c", "echo o; echo e >&2"], io, stderr=own) == 0
    assert (out.data, err.data, own.data) == (b"o\n", b"", b"e\n")
    # with a tty: instead of the terminal, which stays raw (no \r added)
    out, own = CollectedOutput(), CollectedOutput()
    io = StreamIO(stdout=out, tty=True, resize=ResizeQueue())
    assert run_attached(["sh", "-c", "tty >/dev/null && echo o; echo e >&2"], io, stderr=own) == 0
    assert (out.data, own.data) == (b"o\n", b"e\n")


def test_run_attached_calls_on_cancel_before_stopping_the_command() -> None:
    io = StreamIO(stdout=CollectedOutput())
    seen: list[tuple[int, bool]] = []

    def on_cancel(pid: int) -> None:
        seen.append((pid, os.path.exists(f"/proc/{pid}")))

    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(run_attached(["sleep", "30"], io, on_cancel=on_cancel))
    )
    worker.start()
    time.sleep(0.1)
    io.cancelled.set()
    worker.join(TIMEOUT)
    assert result == [128 + 15]
    assert len(seen) == 1
    assert seen[0][1]  # the command still ran


def test_connect_in_a_network_namespace() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sock = connect_in_netns(netns_of_pid(os.getpid()), port)  # our own namespace
    accepted, _ = listener.accept()
    sock.sendall(b"x")
    assert accepted.recv(1) == b"x"
    for item in (sock, accepted, listener):
        item.close()
    with pytest.raises(UnavailableError, match="onnection refused"):
        connect_in_netns(netns_of_pid(os.getpid()), port)
    with pytest.raises(UnavailableError, match="gone"):
        connect_in_netns("/proc/999999999/ns/net", port)


def test_connect_into_another_network_namespace() -> None:
    require_real(os.geteuid() == 0 and shutil.which("unshare") is not None, "needs root, unshare")
    # a listener on 127.0.0.1:7 of a fresh namespace: unreachable from ours, reachable via setns
    server = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c", _NETNS_SERVER],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", 7), timeout=1).close()
        sock = connect_in_netns(netns_of_pid(server.pid), 7)
        assert sock.recv(16) == b"from the netns"
        sock.close()
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


_NETNS_SERVER = """
import socket, subprocess
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
listener = socket.create_server(("127.0.0.1", 7))
print("ready", flush=True)
conn, _ = listener.accept()
conn.sendall(b"from the netns")
conn.close()
"""
