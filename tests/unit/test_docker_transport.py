"""shims/docker/transport.py: docker-py's plain requests over kept unix-socket connections.

docker-py itself drives the transport here, against a small HTTP server on a
unix socket that records what reached it and can close idle connections,
which dockerd does on its own schedule and no test can ask it to.
(The transport against the real dockerd: every docker integration test.)
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests.exceptions

from pycri.errors import NotFoundError, UnavailableError
from pycri_shims.docker import transport
from pycri_shims.docker.errors import docker_errors
from pycri_shims.docker.transport import install


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    seen: list[tuple[str, str, dict[str, str], bytes]]
    connections: int
    close_after: bool


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        if "/missing/" in self.path:
            status, payload = 404, {"message": "No such container: missing"}
        else:
            status, payload = 200, {"Id": "c" * 64, "path": self.path}
        data = json.dumps(payload).encode()
        # read before answering: once the answer is out the test may change it
        closing = self.server.close_after
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if closing:
            self.close_connection = True  # the connection ends once idle

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[_Server]:
    server = _Server(str(tmp_path / "d.sock"), _Handler)
    server.seen, server.connections, server.close_after = [], 0, False
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def api(daemon: _Server) -> Iterator[Any]:
    client = docker.APIClient(base_url=f"unix://{daemon.server_address}", version="1.41")
    kept = install(client, str(daemon.server_address))
    yield client
    kept.close()
    client.close()


def test_docker_py_calls_go_over_one_kept_connection(daemon: _Server, api: Any) -> None:
    assert api.inspect_container("a" * 64)["Id"] == "c" * 64
    api.containers(all=True, filters={"label": ["io.pycri.kind=container", "a=b"]})
    api.stop("a" * 64, timeout=3)
    assert daemon.connections == 1
    (m1, p1, _, _), (m2, p2, _, _), (m3, p3, _, _) = daemon.seen
    assert (m1, p1) == ("GET", f"/v1.41/containers/{'a' * 64}/json")
    # requests' own encoding: the filters as JSON, every value of a list repeated
    assert m2 == "GET"
    assert p2.startswith("/v1.41/containers/json?")
    assert "all=1" in p2
    assert "filters=%7B%22label%22" in p2
    assert (m3, p3) == ("POST", f"/v1.41/containers/{'a' * 64}/stop?t=3")


def test_a_json_body_arrives_whole(daemon: _Server, api: Any) -> None:
    api.create_container("busybox", ["sleep", "1"], name="k8s_app_coredns-7db6d8ff4d-x2k9p")
    method, path, headers, body = daemon.seen[-1]
    assert (method, path) == (
        "POST",
        "/v1.41/containers/create?name=k8s_app_coredns-7db6d8ff4d-x2k9p",
    )
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["Cmd"] == ["sleep", "1"]
    assert "docker-sdk-python" in headers["User-Agent"]
    assert headers["Accept-Encoding"] == "identity"  # http.client would not undo a gzip


def test_docker_errors_stay_docker_pys(api: Any) -> None:
    with pytest.raises(docker.errors.NotFound, match="No such container"):
        api.inspect_container("missing")
    with (
        pytest.raises(NotFoundError, match="No such container: missing"),
        docker_errors("inspecting missing", "unix:///test.sock"),
    ):
        api.inspect_container("missing")


def test_a_connection_the_daemon_closed_while_idle_is_not_reused(daemon: _Server, api: Any) -> None:
    daemon.close_after = True
    for _ in range(3):
        api.inspect_container("a" * 64)
    assert daemon.connections == 3
    daemon.close_after = False
    api.inspect_container("a" * 64)
    api.inspect_container("a" * 64)
    assert daemon.connections == 4


def test_a_connection_closed_as_it_is_reused_is_asked_again(
    daemon: _Server, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dockerd closes it between the liveness check and the request: one retry."""
    monkeypatch.setattr(transport, "_alive", lambda conn: True)
    daemon.close_after = True
    for _ in range(3):
        assert api.inspect_container("a" * 64)["Id"] == "c" * 64
    assert len(daemon.seen) == 3  # each request reached the daemon once
    assert daemon.connections == 3


def test_many_threads_at_once(daemon: _Server, api: Any) -> None:
    errors: list[BaseException] = []

    def calls() -> None:
        try:
            for _ in range(20):
                assert api.inspect_container("a" * 64)["Id"] == "c" * 64
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=calls) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(daemon.seen) == 160
    assert daemon.connections <= 8


def test_a_daemon_gone_is_unavailable(tmp_path: Path) -> None:
    client = docker.APIClient(base_url=f"unix://{tmp_path}/none.sock", version="1.41")
    kept = install(client, str(tmp_path / "none.sock"))
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            client.inspect_container("a" * 64)
        with (
            pytest.raises(UnavailableError, match="its socket does not exist"),
            docker_errors("inspecting", f"unix://{tmp_path}/none.sock"),
        ):
            client.inspect_container("a" * 64)
    finally:
        kept.close()
        client.close()


def test_streams_are_left_to_requests(daemon: _Server, api: Any) -> None:
    response = api._get(api._url("/containers/{0}/logs", "a" * 64), stream=True)
    assert response.raw is not None  # urllib3's response, read as it comes
    response.close()
    assert api.inspect_container("a" * 64)["Id"] == "c" * 64
    assert api._get(api._url("/containers/{0}/json", "a" * 64)).raw is None  # ours
