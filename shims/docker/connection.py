"""The Docker client of a shim: made on first use, forgotten when the daemon goes away."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import docker
from docker.transport.unixconn import UnixHTTPAdapter

from pycri.errors import UnavailableError
from pycri_shims.docker.calls import DockerCallCounter
from pycri_shims.docker.errors import docker_errors
from pycri_shims.docker.transport import UnixTransport, install

__all__ = ["DEFAULT_DOCKER_HOST", "DockerConnection"]

log = logging.getLogger(__name__)

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
#: connections kept for reuse, in the one pool all requests share (_one_pool): log
#: followers hold one each while their container runs, stats calls while in flight
POOL_SIZE = 1024


def _one_pool(api: Any) -> None:
    """Make docker-py's unix-socket adapter keep one connection pool, not one per URL.

    docker-py 7.1's UnixHTTPAdapter keys its pools by the request's whole URL,
    so every new container id or list filter makes a pool (and a fresh socket
    to dockerd): with ``max_pool_size`` 512 that alone took ~3 ms of the ~5.6
    an inspect took. Over TCP, requests' own adapter already pools by host,
    which is all this does for the socket: idle connections are reused
    whatever the path; one still in use (a log stream, an exec) is not.
    """
    adapter = api.get_adapter(api.base_url)
    if not isinstance(adapter, UnixHTTPAdapter):
        return
    get_connection = adapter.get_connection
    base = api.base_url

    def one_pool(url: str, proxies: Any = None) -> Any:
        return get_connection(base, proxies)

    adapter.get_connection = one_pool


class DockerConnection:
    """Hands out the low-level Docker API client, bounded by ``timeout`` seconds per call.

    The client is made lazily, so the shim starts while dockerd is down, and
    dropped whenever a call finds the daemon unreachable, so the next call
    negotiates afresh instead of reusing a dead connection. Hooks registered
    with :meth:`on_connect` run (in a thread) each time a client is made:
    after start-up and after every outage.
    """

    def __init__(self, base_url: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        self.timeout = timeout
        self._lock = threading.Lock()
        self._client: Any = None
        self._transport: UnixTransport | None = None
        self._hooks: list[Callable[[], None]] = []
        self._closed = False
        #: Docker API requests per CRI RPC (see calls.py)
        self.counter = DockerCallCounter()

    def on_connect(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    @property
    def api(self) -> Any:
        """The ``docker.APIClient``; UnavailableError when the daemon cannot be reached."""
        client = self._client
        if client is not None:
            return client.api
        with self._lock:
            if self._closed:
                # a straggling thread of a closed shim must not reconnect (and rerun hooks)
                raise UnavailableError("the docker shim is closed")
            if self._client is None:
                with docker_errors("reaching the Docker daemon", self.base_url):
                    self._probe()
                    self._client = docker.DockerClient(
                        base_url=self.base_url,
                        version="auto",
                        timeout=self.timeout,
                        max_pool_size=POOL_SIZE,
                    )
                    _one_pool(self._client.api)
                    if self.base_url.startswith("unix://"):
                        self._transport = install(
                            self._client.api, self.base_url.removeprefix("unix://")
                        )
                    self.counter.instrument(self._client.api)
                log.info(
                    "talking to the Docker daemon at %s (API %s)",
                    self.base_url,
                    self._client.api.api_version,
                )
                for hook in self._hooks:
                    threading.Thread(target=hook, name="pycri-docker-hook", daemon=True).start()
            return self._client.api

    def inspect(self, container_id: str, what: str) -> Mapping[str, Any]:
        """Docker's inspect data; within one RPC, read once until the RPC changes something.

        (See calls.py.) Errors are mapped as by :meth:`errors` with ``what``.
        """
        data = self.counter.recall(container_id)
        if data is None:
            with self.errors(what):
                data = self.api.inspect_container(container_id)
            assert data is not None
            self.counter.remember(container_id, data)
        return data

    def _probe(self) -> None:
        """Fail fast, and without docker-py, when nothing listens on a unix socket.

        docker-py's unix transport leaks the socket of every refused connect
        (a ResourceWarning each); while the daemon is down every RPC would.
        """
        if not self.base_url.startswith("unix://"):
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(self.timeout)
            probe.connect(self.base_url.removeprefix("unix://"))
        finally:
            probe.close()

    def errors(self, what: str) -> AbstractContextManager[None]:
        """Map the errors of Docker calls made inside the block (see errors.py)."""
        return docker_errors(what, self.base_url, self.drop)

    def drop(self) -> None:
        """Forget the client (not close it: other threads may still be using it)."""
        with self._lock:
            if self._client is not None:
                log.warning("lost the Docker daemon at %s", self.base_url)
            self._client = None
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()  # idle ones now; those in flight as they finish

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        if client is not None:
            client.close()
