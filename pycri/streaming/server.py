"""StreamingServer: the HTTP endpoint behind the URLs that Exec, Attach and PortForward return.

It plays the kubelet streaming library's part for pycri-server: ``get_exec``
and friends store the request under a one-time token and return
``http://HOST:PORT/exec/TOKEN``; a client then upgrades that URL to
WebSocket (remote-command ``v5``/``v4.channel.k8s.io``, port-forward
channels or tunneled SPDY) or SPDY/3.1, and the session runs against the
shim in a thread of its own. Loopback only unless ``allow_remote``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.sync.server import Server, ServerConnection
from websockets.typing import Subprotocol

from pycri.api import api_pb2 as cri
from pycri.errors import InvalidArgumentError, UnimplementedError
from pycri.shim import Shim
from pycri.streaming import channels
from pycri.streaming.http import RequestHead, consume, peek_head, send_response
from pycri.streaming.negotiation import SubprotocolNames, pick
from pycri.streaming.portforward import (
    accept_port_stream,
    serve_spdy_port_forward,
    serve_websocket_port_forward,
)
from pycri.streaming.remotecommand import (
    Command,
    accept_command_stream,
    serve_spdy_command,
    serve_websocket_command,
)
from pycri.streaming.spdysession import SpdySession, SpdyStream
from pycri.streaming.tokens import TOKEN_TTL, TokenCache, TokenState
from pycri.streaming.transport import SocketTransport, WebSocketTransport

__all__ = ["PortForwardTarget", "StreamingServer", "serving"]

log = logging.getLogger(__name__)
#: the websockets library's own messages (handshakes, "connection open") go here
ws_log = logging.getLogger("pycri.streaming.websocket")


def _quiet_upstream_race(record: logging.LogRecord) -> bool:
    """Drop websockets' safety net ("unexpected internal error") catching its sync connection
    racing itself: its sending thread closes the socket while its reader thread still feeds
    data to the protocol (EOFError), or a handshake answer meets an EOF the reader already
    sent (AssertionError). The connection just closes and no session of ours is harmed, but
    the traceback (a few in thousands of closing connections under load) reads like a crash.
    """
    exc = record.exc_info[1] if record.exc_info else None
    if record.getMessage() == "unexpected internal error" and isinstance(
        exc, EOFError | AssertionError
    ):
        log.debug("websockets raced itself closing a connection: %r", exc)
        return False
    return True


ws_log.addFilter(_quiet_upstream_race)

TUNNEL_PROTOCOL = channels.SPDY_TUNNEL_PREFIX + channels.PORTFORWARD_SPDY_PROTOCOL
#: WebSocket keepalive: a client that stops answering pings is dropped (and its exec killed)
PING_INTERVAL = 30.0
PING_TIMEOUT = 60.0
MAX_MESSAGE = 16 * 1024 * 1024


@dataclass(frozen=True)
class PortForwardTarget:
    """A redeemed PortForward request; ``ports`` may be empty (SPDY names them per stream)."""

    pod_id: str
    ports: tuple[int, ...]


StreamRequest = Command | PortForwardTarget


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"streaming address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:0")
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StreamingServer:
    """Serve streaming sessions for ``backend`` (a shim) at ``address``."""

    def __init__(
        self,
        backend: Shim,
        address: str = "127.0.0.1:0",
        *,
        allow_remote: bool = False,
        base_url: str | None = None,
        token_ttl: float = TOKEN_TTL,
    ) -> None:
        self.backend = backend
        self.host, self.port = _parse_address(address)
        if not _is_loopback(self.host) and not allow_remote:
            raise ValueError(
                f"refusing to serve streaming on {address}: not a loopback address "
                "(a URL from Exec runs commands in containers); pass allow_remote to override"
            )
        self._base_url = base_url.rstrip("/") if base_url else None
        self.tokens: TokenCache[tuple[str, StreamRequest]] = TokenCache(ttl=token_ttl)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: how to end each connection's session when the server stops
        self._closers: dict[socket.socket, Callable[[], None]] = {}
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where URLs point: ``http://HOST:PORT`` (the real port once started)."""
        if self._base_url:
            return self._base_url
        host = self.host
        if host in ("0.0.0.0", "::"):  # noqa: S104 - every interface: name one clients reach
            host = socket.getfqdn()
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, self.port), family=family)
        self.port = listener.getsockname()[1]
        self._server = Server(listener, self._handle, logger=ws_log)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="pycri-streaming", daemon=True
        )
        self._thread.start()
        log.info("streaming server listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Close the listener and every session (their shims see ``cancelled``)."""
        with self._lock:
            if self._server is None or self._stopping:
                return
            self._stopping = True
            closers = list(self._closers.values())
        for close in closers:
            with contextlib.suppress(Exception):
                close()
        # waits for the connection threads, which end once their session sees the hang-up
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- URLs (what the CRI RPCs return) ---------------------------------------------------

    def _url(self, route: str, request: StreamRequest) -> str:
        return f"{self.url}/{route}/{self.tokens.insert((route, request))}"

    def get_exec(self, request: cri.ExecRequest) -> str:
        _check_stdio(request)
        command = Command(
            request.container_id,
            tuple(request.cmd),
            request.stdin,
            request.stdout,
            request.stderr,
            request.tty,
        )
        return self._url("exec", command)

    def get_attach(self, request: cri.AttachRequest) -> str:
        _check_stdio(request)
        command = Command(
            request.container_id, None, request.stdin, request.stdout, request.stderr, request.tty
        )
        return self._url("attach", command)

    def get_port_forward(self, request: cri.PortForwardRequest) -> str:
        if not request.pod_sandbox_id:
            raise InvalidArgumentError("missing required pod_sandbox_id")
        for port in request.port:
            if not 0 < port < 65536:
                raise InvalidArgumentError(f"port {port} must be between 1 and 65535")
        target = PortForwardTarget(request.pod_sandbox_id, tuple(request.port))
        return self._url("portforward", target)

    # -- connections ---------------------------------------------------------------------

    def _handle(self, sock: socket.socket, address: Any) -> None:
        """One client connection (a thread started by the websockets Server)."""
        _keepalive(sock)

        def hang_up() -> None:
            # whatever protocol runs on it sees end of input, so its session ends
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        with self._lock:
            accepted = not self._stopping
            if accepted:
                self._closers[sock] = hang_up
        try:
            if accepted:
                self._dispatch(sock)
        except (OSError, ValueError) as err:
            log.debug("streaming connection from %s ended: %s", address, err)
        except Exception:
            log.exception("streaming connection from %s failed", address)
        finally:
            with self._lock:
                self._closers.pop(sock, None)
            with contextlib.suppress(OSError):
                sock.close()
            # what websockets' own handler does: shutdown() waits for this set to empty
            assert self._server is not None
            with self._server.lock:
                self._server.handler_threads.discard(threading.current_thread())

    def _on_stop(self, sock: socket.socket, close: Callable[[], None]) -> None:
        """How to end this connection's session gracefully when the server stops."""
        with self._lock:
            if sock in self._closers:
                self._closers[sock] = close

    def _dispatch(self, sock: socket.socket) -> None:
        head = peek_head(sock)
        route, _, token = head.path.strip("/").partition("/")
        if route not in ("exec", "attach", "portforward") or not token or "/" in token:
            return self._refuse(sock, head, HTTPStatus.NOT_FOUND, "no such streaming endpoint")
        redeemed = self.tokens.consume(token)
        if redeemed.state is not TokenState.VALID or redeemed.request is None:
            status = (
                HTTPStatus.GONE if redeemed.state is TokenState.EXPIRED else HTTPStatus.NOT_FOUND
            )
            why = f"streaming token {redeemed.state.value}: call the RPC again for a new URL"
            return self._refuse(sock, head, status, why)
        kind, request = redeemed.request
        if kind != route:
            return self._refuse(sock, head, HTTPStatus.NOT_FOUND, f"not a {route} token")
        if head.upgrade == "websocket":
            if head.pipelined:
                # RFC 6455 4.1: a client waits for the handshake's answer before it sends
                # frames; early bytes race websockets' handshake into an internal error
                why = "data sent before the WebSocket handshake completed"
                return self._refuse(sock, head, HTTPStatus.BAD_REQUEST, why)
            return self._serve_websocket(sock, route, request)
        if head.upgrade.startswith("spdy/3.1"):
            return self._serve_spdy(sock, head, route, request)
        why = "upgrade the connection to WebSocket or SPDY/3.1"
        return self._refuse(sock, head, HTTPStatus.BAD_REQUEST, why)

    def _refuse(self, sock: socket.socket, head: RequestHead, status: HTTPStatus, why: str) -> None:
        log.info("refused streaming request %s %s: %s", head.method, head.path[:24], why)
        consume(sock, head.size)
        send_response(sock, status, why + "\n")

    # -- WebSocket ---------------------------------------------------------------------------

    def _serve_websocket(self, sock: socket.socket, route: str, request: StreamRequest) -> None:
        supported = (
            (TUNNEL_PROTOCOL, *channels.PORTFORWARD_WS_PROTOCOLS)
            if route == "portforward"
            else channels.EXEC_WS_PROTOCOLS
        )
        names = SubprotocolNames(supported)

        def select(protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
            choice = pick(offered, names.tokens)
            if choice is None and offered:
                raise NegotiationError(
                    f"requested protocol(s) are not supported: {names.originals(offered)}; "
                    f"supports {list(supported)}"
                )
            # no subprotocol at all means the original binary channel protocol
            return Subprotocol(choice) if choice else None

        protocol = ServerProtocol(
            subprotocols=[Subprotocol(t) for t in names.tokens],
            select_subprotocol=select,
            max_size=MAX_MESSAGE,
            logger=ws_log,
        )
        assert self._server is not None
        connection = ServerConnection(
            sock,
            protocol,
            self._server,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            close_timeout=5,
        )
        try:
            connection.handshake(names.request_to_tokens, names.response_to_original, timeout=10)
        except ConnectionClosed as err:  # the client left, or broke the handshake
            log.debug("WebSocket handshake failed: %s", err)
            connection.close_socket()
            return
        if connection.protocol.state is not State.OPEN:
            connection.close_socket()
            return
        connection.start_keepalive()

        def going_away() -> None:
            # the close handshake waits for the client: not on the stopping thread
            threading.Thread(
                target=connection.close, args=(1001, "pycri-server is stopping"), daemon=True
            ).start()

        self._on_stop(sock, going_away)
        with connection:
            self._run_websocket(connection, names.original(connection.subprotocol), request)

    def _run_websocket(
        self, connection: ServerConnection, subprotocol: str | None, request: StreamRequest
    ) -> None:
        _audit(request, f"WebSocket {subprotocol or 'channel.k8s.io'}")
        if isinstance(request, Command):
            serve_websocket_command(connection, self.backend, request)
        elif subprotocol == TUNNEL_PROTOCOL:
            session = SpdySession(WebSocketTransport(connection), accept_port_stream).start()
            serve_spdy_port_forward(session, self.backend, request.pod_id)
        else:
            ports = request.ports
            if not ports and connection.request is not None:
                query = parse_qs(urlsplit(connection.request.path).query)
                try:
                    ports = tuple(channels.iter_ports(query.get("port", [])))
                except ValueError as err:
                    connection.close(1008, str(err)[:100])
                    return
            serve_websocket_port_forward(connection, self.backend, request.pod_id, ports)

    # -- SPDY -----------------------------------------------------------------------------

    def _serve_spdy(
        self, sock: socket.socket, head: RequestHead, route: str, request: StreamRequest
    ) -> None:
        supported = (
            (channels.PORTFORWARD_SPDY_PROTOCOL,)
            if route == "portforward"
            else channels.EXEC_SPDY_PROTOCOLS
        )
        offered = head.header_list("X-Stream-Protocol-Version")
        chosen = pick(offered, supported)
        if chosen is None:
            consume(sock, head.size)
            send_response(
                sock,
                HTTPStatus.FORBIDDEN,
                f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                f"server accepts {list(supported)}\n",
                {"X-Accepted-Stream-Protocol-Versions": ", ".join(supported)},
            )
            return
        consume(sock, head.size)
        send_response(
            sock,
            HTTPStatus.SWITCHING_PROTOCOLS,
            headers={
                "Connection": "Upgrade",
                "Upgrade": "SPDY/3.1",
                "X-Stream-Protocol-Version": chosen,
            },
        )
        accept: Callable[[SpdyStream], bool] = (
            accept_port_stream if route == "portforward" else accept_command_stream
        )
        _audit(request, f"SPDY/3.1 {chosen}")
        session = SpdySession(SocketTransport(sock), accept).start()
        self._on_stop(sock, session.abort)
        try:
            if isinstance(request, Command):
                serve_spdy_command(session, chosen, self.backend, request)
            else:
                serve_spdy_port_forward(session, self.backend, request.pod_id)
        finally:
            session.close()


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive: a vanished SPDY client must not hold its session (and exec) forever."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)


def _audit(request: StreamRequest, transport: str) -> None:
    """One line per session: who got into which container is worth a log line."""
    if isinstance(request, PortForwardTarget):
        ports = ",".join(map(str, request.ports)) or "ports named per connection"
        log.info("port-forward to pod %s (%s) over %s", request.pod_id[:13], ports, transport)
    else:
        # the program only: arguments can carry secrets
        what = f"exec {request.cmd[0]!r}" if request.cmd else "attach"
        tty = " with a tty" if request.tty else ""
        log.info("%s in %s%s over %s", what, request.container_id[:13], tty, transport)


def _check_stdio(request: cri.ExecRequest | cri.AttachRequest) -> None:
    """The kubelet's validateExecRequest / validateAttachRequest."""
    if not request.container_id:
        raise InvalidArgumentError("missing required container_id")
    if request.tty and request.stderr:
        raise InvalidArgumentError(
            "tty and stderr cannot both be true: a terminal has a single output stream"
        )
    if not (request.stdin or request.stdout or request.stderr):
        raise InvalidArgumentError("one of stdin, stdout, or stderr must be set")


#: the shim method behind each streaming RPC
SHIM_METHODS = {"Exec": "exec_stream", "Attach": "attach", "PortForward": "port_forward"}


def serving(streaming: StreamingServer | None, shim: Shim, rpc_name: str) -> StreamingServer:
    """The server for ``rpc_name``; UNIMPLEMENTED when there is none or the shim can't."""
    if streaming is None:
        raise UnimplementedError(
            f"streaming {rpc_name} needs pycri-server's streaming server, which is off "
            "(--no-streaming); use ExecSync to run commands"
        )
    method = SHIM_METHODS[rpc_name]
    # an optional capability: the base class's method only raises UNIMPLEMENTED
    if getattr(type(shim), method) is getattr(Shim, method):
        raise UnimplementedError(f"the {shim.name} shim does not support streaming {rpc_name}")
    return streaming
