"""PortForward sessions: each forwarded connection becomes a shim ``port_forward`` call.

SPDY (``crictl port-forward``, also tunneled in WebSocket by ``--transport
websocket``): for every local connection the client opens an ``error`` and a
``data`` stream sharing ``port`` and ``requestID`` headers; a message on
the error stream makes the client drop the whole session.

WebSocket channels (the kubelet's older protocol, what ``pycrictl`` uses):
the ports are fixed for the connection; port *i* gets data channel ``2i``
and error channel ``2i+1``, and the first message on each carries the port
as a little-endian uint16. One forwarded connection per port.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Sequence

from websockets.sync.connection import Connection

from pycri.errors import CRIError
from pycri.shim import Shim
from pycri.streaming import channels
from pycri.streaming.remotecommand import (
    LINGER,
    STREAM_CREATION_TIMEOUT,
    WebSocketChannels,
    bounded_call,
)
from pycri.streaming.spdysession import SpdySession, SpdyStream
from pycri.streaming.streams import READ_SIZE, Pipe

__all__ = ["serve_spdy_port_forward", "serve_websocket_port_forward"]

log = logging.getLogger(__name__)


def forward(
    backend: Shim, pod_id: str, port: int, connection: SpdyStream | ChannelConnection
) -> str:
    """Run the shim's port_forward; the error message for the client, or ""."""
    try:
        bounded_call(
            lambda: backend.port_forward(pod_id, port, connection),
            connection.cancelled,
            "port-forward",
        )
        return ""
    except CRIError as err:
        return f"error forwarding port {port} to pod {pod_id}: {err.message}"
    except OSError as err:
        return f"error forwarding port {port} to pod {pod_id}: {err}"
    except Exception as err:
        log.exception("port forward to %s:%d failed", pod_id[:13], port)
        return f"error forwarding port {port} to pod {pod_id}: {err}"
    finally:
        connection.close()


# -- SPDY ------------------------------------------------------------------------------


def accept_port_stream(stream: SpdyStream) -> bool:
    """The kubelet's checks: a port in 1..65535 and a stream type of data or error."""
    try:
        port = int(stream.header("port"))
    except ValueError:
        return False
    kind = stream.header("streamType")
    if not (0 < port < 65536 and kind in ("data", "error")):
        return False
    if kind == "error":
        stream.input.close()  # nobody reads it: a client writing there must not stall the rest
    return True


def _request_id(stream: SpdyStream) -> str:
    request_id = stream.header("requestID")
    if request_id:
        return request_id
    # old clients send no requestID: their error and data streams are consecutive
    offset = 0 if stream.header("streamType") == "error" else 2
    return str(stream.id - offset)


def serve_spdy_port_forward(session: SpdySession, backend: Shim, pod_id: str) -> None:
    """Forward every stream pair the client opens until it closes the connection."""
    pending: dict[str, dict[str, SpdyStream]] = {}
    workers: list[threading.Thread] = []
    while (stream := session.next_stream()) is not None:
        pair = pending.setdefault(_request_id(stream), {})
        kind = stream.header("streamType")
        if kind in pair:
            stream.reset()
            continue
        pair[kind] = stream
        if len(pair) == 2:
            del pending[_request_id(stream)]
            worker = threading.Thread(
                target=_forward_pair,
                args=(backend, pod_id, pair["data"], pair["error"]),
                name=f"pycri-portforward-{stream.header('port')}",
                daemon=True,
            )
            worker.start()
            workers.append(worker)
            workers = [w for w in workers if w.is_alive()]
    session.close()
    for worker in workers:
        worker.join(LINGER)


def _forward_pair(backend: Shim, pod_id: str, data: SpdyStream, error: SpdyStream) -> None:
    message = forward(backend, pod_id, int(data.header("port")), data)
    if message:
        try:
            error.write(message.encode())
        except OSError:
            pass
    error.close()


# -- WebSocket channels -----------------------------------------------------------------


class ChannelConnection:
    """A forwarded connection over one data channel of a WebSocket."""

    def __init__(self, session: WebSocketChannels, channel: int, cancelled: threading.Event):
        self.session, self.channel = session, channel
        self.input = Pipe()
        self.cancelled = cancelled

    def read(self, size: int = READ_SIZE, timeout: float | None = None) -> bytes:
        return self.input.read(size, timeout)

    def write(self, data: bytes) -> None:
        self.session.send(self.channel, data)

    def close(self) -> None:
        """The protocol has no per-channel close: the connection ends when all ports are done."""


def serve_websocket_port_forward(
    connection: Connection, backend: Shim, pod_id: str, ports: Sequence[int]
) -> None:
    """Forward one connection to each of ``ports`` over a channel WebSocket."""
    codec = channels.ChannelCodec(connection.subprotocol or channels.V1)
    session = WebSocketChannels(connection, codec)
    cancelled = threading.Event()
    conns = [ChannelConnection(session, 2 * i, cancelled) for i in range(len(ports))]

    def route(channel: int, data: bytes) -> None:
        if channel % 2 == 0 and channel // 2 < len(conns):
            session.feed(conns[channel // 2].input, data)

    def on_end() -> None:
        cancelled.set()
        for conn in conns:
            conn.input.close_write()

    try:
        for index, port in enumerate(ports):
            session.send(2 * index, struct.pack("<H", port))
            session.send(2 * index + 1, struct.pack("<H", port))
    except ConnectionResetError:
        return
    reader = session.start_reader(route, on_end)

    def run(index: int, port: int) -> None:
        message = forward(backend, pod_id, port, conns[index])
        if message:
            try:
                session.send(2 * index + 1, message.encode())
            except ConnectionResetError:
                pass

    workers = [
        threading.Thread(target=run, args=(i, p), name=f"pycri-portforward-{p}", daemon=True)
        for i, p in enumerate(ports)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    connection.close()
    reader.join(STREAM_CREATION_TIMEOUT)
