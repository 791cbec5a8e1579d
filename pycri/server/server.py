"""CRIServer: a CRIRuntime served over gRPC on a unix socket (or loopback TCP)."""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import socket
import stat
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.endpoint import Endpoint, parse_endpoint
from pycri.server.progress import build_progress_handler
from pycri.server.servicer import build_handlers

__all__ = ["MAX_MESSAGE_BYTES", "CRIServer", "EndpointInUseError"]

log = logging.getLogger(__name__)

#: the kubelet sends and accepts CRI messages up to 16 MiB
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SOCKET_MODE = 0o660
SOCKET_DIR_MODE = 0o750


class EndpointInUseError(Exception):
    """Another live server holds the socket, or the path is not ours to take."""


@dataclass(frozen=True)
class ServerTLS:
    """PEM files for TLS on TCP; with ``client_ca``, clients must present a cert it signed."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        ca = self.client_ca.read_bytes() if self.client_ca else None
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )


def _prepare_unix_socket(path: str) -> None:
    """Create the parent directory; replace a stale socket, never a live one."""
    parent = os.path.dirname(path)
    os.makedirs(parent, mode=SOCKET_DIR_MODE, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise EndpointInUseError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError as err:
        if err.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise EndpointInUseError(f"cannot tell whether {path} is in use: {err}") from err
        log.info("removing stale socket %s left by a previous run", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    finally:
        probe.close()
    raise EndpointInUseError(
        f"another server is listening on {path}; stop it or choose another --listen path"
    )


class CRIServer:
    """Serve ``runtime`` at ``listen`` until :meth:`stop`.

    TCP is refused on a non-loopback address unless ``allow_remote`` is set:
    whoever reaches the CRI runs containers (use ``tls`` with a client CA
    there). A unix socket is mode 0660, owned by ``socket_group`` if given.
    """

    def __init__(
        self,
        runtime: CRIRuntime,
        listen: str | Endpoint,
        *,
        max_workers: int = 16,
        allow_remote: bool = False,
        socket_group: str | None = None,
        tls: ServerTLS | None = None,
    ) -> None:
        self.runtime = runtime
        self.endpoint = parse_endpoint(listen) if isinstance(listen, str) else listen
        if not self.endpoint.is_loopback and not allow_remote:
            raise ValueError(
                f"refusing to serve the CRI on {self.endpoint}: not a loopback address "
                "(whoever reaches it runs containers); pass allow_remote to override"
            )
        if tls is not None and self.endpoint.scheme != "tcp":
            raise ValueError("TLS applies to tcp:// endpoints; a unix socket has file permissions")
        self._gid = self._group_id(socket_group)
        self._tls = tls
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._socket_inode: int | None = None
        self.health = health.HealthServicer()

    @staticmethod
    def _group_id(name: str | None) -> int | None:
        if name is None:
            return None
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            if name.isdigit():
                return int(name)
            raise ValueError(f"socket group {name!r} does not exist") from None

    @property
    def address(self) -> str:
        """The endpoint clients should use (with the real port when 0 was asked)."""
        return str(self.endpoint)

    def start(self) -> Self:
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="pycri-rpc"
            ),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        server.add_generic_rpc_handlers(
            [*build_handlers(self.runtime), build_progress_handler(self.runtime)]
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if self.endpoint.scheme == "unix":
            _prepare_unix_socket(self.endpoint.path)
            old_umask = os.umask(0o117)  # the socket is born 0660, never world-writable
            try:
                server.add_insecure_port(self.endpoint.grpc_target)
            finally:
                os.umask(old_umask)
            os.chmod(self.endpoint.path, SOCKET_MODE)
            if self._gid is not None:
                os.chown(self.endpoint.path, -1, self._gid)
            self._socket_inode = os.lstat(self.endpoint.path).st_ino
        else:
            target = self.endpoint.grpc_target
            if self._tls is not None:
                port = server.add_secure_port(target, self._tls.credentials())
            else:
                port = server.add_insecure_port(target)
            if port == 0:
                raise EndpointInUseError(f"cannot listen on {self.endpoint}")
            self.endpoint = Endpoint("tcp", host=self.endpoint.host, port=port)
        server.start()
        self._server = server
        for service in ("", *cri.DESCRIPTOR.services_by_name):
            name = f"runtime.v1.{service}" if service else ""
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving the CRI on %s%s with the %s shim",
            self.address,
            " (TLS)" if self._tls else "",
            self.runtime.shim.name,
        )
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (True) or ``timeout`` passes (False)."""
        if self._server is None:
            return True
        return bool(self._server.wait_for_termination(timeout))

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop serving: in-flight RPCs get ``grace`` seconds; the socket file goes."""
        server, self._server = self._server, None
        if server is None:
            return
        self.health.enter_graceful_shutdown()
        server.stop(grace).wait()
        if self.endpoint.scheme == "unix":
            self._remove_socket()

    def _remove_socket(self) -> None:
        # Only our own socket: a new server may already have replaced it.
        try:
            if os.lstat(self.endpoint.path).st_ino == self._socket_inode:
                os.unlink(self.endpoint.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(grace=1.0)
