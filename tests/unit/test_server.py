"""pycri-server and CRIServer as real servers on unix sockets and loopback TCP."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.runtime import CRIRuntime
from pycri.errors import InternalError, UnavailableError, UnimplementedError
from pycri.server.server import CRIServer, EndpointInUseError
from pycri.testing import FakeEndpoint
from pycri_shims.fake import FakeShim


def test_socket_is_0660_and_removed_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cri.sock"
    server = CRIServer(CRIRuntime(FakeShim()), f"unix://{path}").start()
    try:
        mode = os.lstat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660
    finally:
        server.stop(grace=0.1)
    assert not path.exists()


def test_stale_socket_is_replaced_live_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "cri.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a crashed server's leftover
    with CRIServer(CRIRuntime(FakeShim()), f"unix://{path}") as server:
        with CRIClient(server.address) as client:
            assert client.version().runtime_name == "pycri"
        second = CRIServer(CRIRuntime(FakeShim()), f"unix://{path}")
        with pytest.raises(EndpointInUseError, match="another server is listening"):
            second.start()
        # the refused server left the live socket alone
        with CRIClient(server.address) as client:
            assert client.version().runtime_name == "pycri"


def test_regular_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "cri.sock"
    path.write_text("precious")
    with pytest.raises(EndpointInUseError, match="not a socket"):
        CRIServer(CRIRuntime(FakeShim()), f"unix://{path}").start()
    assert path.read_text() == "precious"


def test_tcp_loopback_port_zero() -> None:
    with CRIServer(CRIRuntime(FakeShim()), "tcp://127.0.0.1:0") as server:
        assert server.endpoint.port > 0
        with CRIClient(server.address) as client:
            assert client.version().runtime_api_version == "v1"


def test_tcp_non_loopback_is_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        CRIServer(CRIRuntime(FakeShim()), "tcp://0.0.0.0:0")


def test_health_service(fake_endpoint: FakeEndpoint) -> None:
    with grpc.insecure_channel(fake_endpoint.server.endpoint.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "runtime.v1.RuntimeService", "runtime.v1.ImageService"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_unimplemented_rpcs_say_so(fake_endpoint: FakeEndpoint) -> None:
    client = fake_endpoint.client
    with pytest.raises(UnimplementedError, match="ExecSync"):
        client.exec(cri.ExecRequest(container_id="x", cmd=["sh"]))
    with pytest.raises(UnimplementedError, match="checkpointing"):
        client.checkpoint_container(cri.CheckpointContainerRequest(container_id="x"))


def test_unexpected_shim_error_is_internal_and_server_survives(
    fake_endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom() -> list[cri.Image]:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(fake_endpoint.fake, "list_images", boom)
    with pytest.raises(InternalError, match="kaboom"):
        fake_endpoint.client.list_images()
    assert fake_endpoint.client.version().runtime_name == "pycri"


def test_client_names_the_missing_endpoint(tmp_path: Path) -> None:
    with (
        CRIClient(f"unix://{tmp_path / 'absent.sock'}", timeout=2) as client,
        pytest.raises(UnavailableError, match="cannot reach the CRI endpoint"),
    ):
        client.version()


def test_events_stream(fake_endpoint: FakeEndpoint) -> None:
    client = fake_endpoint.client
    events = client.get_container_events(timeout=10)
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="ev", namespace="default", uid="u1")
    )
    pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    time.sleep(0.2)  # let the stream subscribe before the event happens
    container_id = client.create_container(
        cri.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name="c"),
                image=cri.ImageSpec(image="busybox"),
                command=["sleep", "10"],
            ),
        )
    ).container_id
    first = next(iter(events))
    assert (first.container_id, first.container_event_type) == (
        container_id,
        cri.CONTAINER_CREATED_EVENT,
    )
    client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def _start_server(args: list[str], socket_path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pycri.server.main", *args, "--listen", f"unix://{socket_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not socket_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, err = process.communicate()
            raise AssertionError(f"pycri-server did not start: {err}")
        time.sleep(0.05)
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_pycri_server_shuts_down_on_signal(tmp_path: Path, signum: signal.Signals) -> None:
    path = tmp_path / "cri.sock"
    process = _start_server([], path)
    try:
        with CRIClient(f"unix://{path}") as client:
            client.wait_ready()
            version = client.version()
        assert version.runtime_version.startswith("0.1.0 (fake shim")
        process.send_signal(signum)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not path.exists()
    _, err = process.communicate()
    assert "shutting down" in err


def test_pycri_server_reports_unknown_shim(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pycri.server.main",
            "--shim",
            "nope",
            "--listen",
            f"unix://{tmp_path / 's.sock'}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown shim 'nope'" in result.stderr
    assert "fake" in result.stderr
    assert not (tmp_path / "s.sock").exists()
