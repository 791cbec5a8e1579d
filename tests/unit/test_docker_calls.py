"""The docker shim's per-RPC Docker call counter and inspect memo, without a daemon."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from pycri_shims.docker.calls import BACKGROUND, DockerCallCounter, endpoint
from pycri_shims.docker.image_volumes import ImageVolumes

ID = "0123456789abcdef" * 4


class FakeAPI:
    """Stands for docker.APIClient: every docker-py call ends in ``request``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> str:
        self.sent.append((method, url))
        return "response"


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("get", f"http+docker://localhost/v1.41/containers/{ID}/json", "GET /containers/{id}/json"),
        (
            "GET",
            "http+docker://localhost/v1.41/containers/json?all=1&filters=%7B%7D",
            "GET /containers/json",
        ),
        (
            "POST",
            f"http://127.0.0.1:2375/v1.41/containers/{ID[:12]}/start",
            "POST /containers/{id}/start",
        ),
        (
            "DELETE",
            f"http+docker://localhost/v1.41/containers/{ID}?v=True",
            "DELETE /containers/{id}",
        ),
        ("GET", "http+docker://localhost/version", "GET /version"),
    ],
)
def test_endpoint_names_drop_ids_queries_and_version(method: str, url: str, expected: str) -> None:
    assert endpoint(method, url) == expected


def test_requests_count_against_the_rpc_of_their_thread() -> None:
    counter = DockerCallCounter()
    api = FakeAPI()
    counter.instrument(api)
    counter.begin("CreateContainer")
    assert api.request("GET", f"http+docker://localhost/v1.41/containers/{ID}/json") == "response"
    api.request("POST", "http+docker://localhost/v1.41/containers/create")
    assert counter.current() == ["GET /containers/{id}/json", "POST /containers/create"]
    # another thread, in no RPC: a log copier, say
    worker = threading.Thread(
        target=lambda: api.request("GET", f"http+docker://localhost/containers/{ID}/logs")
    )
    worker.start()
    worker.join()
    counter.finish()
    counter.begin("CreateContainer")
    api.request("POST", "http+docker://localhost/v1.41/containers/create")
    counter.finish()
    snapshot = counter.snapshot()
    assert snapshot["CreateContainer"]["rpcs"] == 2
    assert snapshot["CreateContainer"]["calls"] == 3
    assert snapshot["CreateContainer"]["per_rpc"] == 1.5
    assert snapshot[BACKGROUND]["calls"] == 1
    assert len(api.sent) == 4  # every request still went out


def test_a_failed_request_counts_too() -> None:
    counter = DockerCallCounter()

    class Down:
        def request(self, method: str, url: str) -> None:
            raise ConnectionError("refused")

    api = Down()
    counter.instrument(api)
    counter.begin("Version")
    with pytest.raises(ConnectionError):
        api.request("GET", "http+docker://localhost/version")
    assert counter.snapshot()["Version"]["calls"] == 1


def test_inspects_are_kept_within_an_rpc_until_it_changes_something() -> None:
    counter = DockerCallCounter()
    api = FakeAPI()
    counter.instrument(api)
    data = {"Id": ID}
    counter.begin("RemovePodSandbox")
    assert counter.recall(ID) is None
    counter.remember(ID, data)
    assert counter.recall(ID) is data
    api.request("GET", "http+docker://localhost/v1.41/containers/json")  # a read keeps it
    assert counter.recall(ID) is data
    api.request("POST", f"http+docker://localhost/v1.41/containers/{ID}/stop")
    assert counter.recall(ID) is None  # a change forgets every answer
    counter.remember(ID, data)
    counter.finish()
    counter.begin("PodSandboxStatus")
    assert counter.recall(ID) is None  # the next RPC asks Docker afresh


def test_nothing_is_kept_outside_an_rpc() -> None:
    counter = DockerCallCounter()
    counter.remember(ID, {"Id": ID})
    assert counter.recall(ID) is None
    counter.begin("ContainerStatus")
    counter.remember(ID, {"Id": ID})
    seen: list[object] = []
    other = threading.Thread(target=lambda: seen.append(counter.recall(ID)))
    other.start()
    other.join()
    assert seen == [None]  # per thread: a concurrent RPC does not see it


class NoDocker:
    """A DockerConnection that must not be used."""

    @property
    def api(self) -> Any:
        raise AssertionError("no Docker call expected")


def test_pruning_an_empty_root_asks_docker_nothing(tmp_path: Path) -> None:
    volumes = ImageVolumes(NoDocker(), str(tmp_path))  # type: ignore[arg-type]
    volumes.prune()  # no root yet
    os_root = tmp_path / "image-volumes"
    os_root.mkdir()
    volumes.prune()  # an empty root: nothing to delete, no helper can be left
    (os_root / "abc.tmp-1234").mkdir()  # an export's leftovers: Docker is asked
    with pytest.raises(AssertionError, match="no Docker call"):
        volumes.prune()
