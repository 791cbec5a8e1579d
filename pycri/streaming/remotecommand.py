"""Exec and Attach sessions: a client connection on one side, the shim on the other.

Over WebSocket the stdio channels are multiplexed in messages
(:mod:`pycri.streaming.channels`); over SPDY the client opens one stream
per channel, named by its ``streamType`` header. Either way the shim gets a
:class:`~pycri.streaming.streams.StreamIO`, and when it returns the client
gets the final status on the error channel: a JSON ``metav1.Status`` with
the exit code (v4 and v5) or, in the older versions, a text error only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.connection import Connection

from pycri.errors import CRIError
from pycri.shim import Shim
from pycri.streaming import channels
from pycri.streaming.spdysession import SpdySession, SpdyStream
from pycri.streaming.streams import Pipe, ResizeQueue, StreamIO

__all__ = ["Command", "serve_spdy_command", "serve_websocket_command"]

log = logging.getLogger(__name__)

#: how long a SPDY client may take to open its streams (the kubelet's default)
STREAM_CREATION_TIMEOUT = 30.0
#: after the status is sent, how long we wait for the client to hang up first
LINGER = 5.0
#: how long a shim may take to return once its client has gone
CANCEL_GRACE = 10.0
#: how often a reader held up by a full input pipe checks that its connection is still open
POLL = 0.25

T = TypeVar("T")


def bounded_call(fn: Callable[[], T], cancelled: threading.Event, what: str) -> T:
    """``fn()`` in a daemon thread, abandoned ``CANCEL_GRACE`` s after ``cancelled``.

    A session must end even when a shim ignores cancellation, or stopping
    the server would hang on it.
    """
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(fn())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, name=f"pycri-{what}", daemon=True)
    worker.start()
    while worker.is_alive() and not cancelled.is_set():
        worker.join(0.25)
    worker.join(CANCEL_GRACE)
    if errors:
        raise errors[0]
    if not results:
        log.warning("%s did not return %ss after its client left; abandoned", what, CANCEL_GRACE)
        raise TimeoutError(f"{what} did not stop after its client left")
    return results[0]


@dataclass(frozen=True)
class Command:
    """A redeemed Exec (``cmd`` set) or Attach (``cmd`` None) request."""

    container_id: str
    cmd: tuple[str, ...] | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @property
    def kind(self) -> str:
        return "attach" if self.cmd is None else "exec"


@dataclass(frozen=True)
class Outcome:
    """How the session ended: an exit code, or an error message."""

    exit_code: int = 0
    error: str = ""

    def status(self, json_status: bool, command: Command) -> bytes:
        """The error-channel payload (v1-v3 send nothing on success, a text on failure)."""
        if self.error:
            return channels.status_for_error(self.error) if json_status else self.error.encode()
        if self.exit_code == 0:
            return channels.status_success() if json_status else b""
        if not json_status:
            return f"command terminated with exit code {self.exit_code}".encode()
        return channels.status_for_exit(self.exit_code, f"{list(command.cmd or ())}")


def run_command(backend: Shim, command: Command, io: StreamIO) -> Outcome:
    """Call the shim; turn its exit code or error into an :class:`Outcome`."""
    cmd = command.cmd
    try:
        if cmd is None:
            bounded_call(lambda: backend.attach(command.container_id, io), io.cancelled, "attach")
            return Outcome()
        code = bounded_call(
            lambda: backend.exec_stream(command.container_id, cmd, io), io.cancelled, "exec"
        )
        return Outcome(exit_code=code)
    except CRIError as err:
        where = f"{command.kind} in container {command.container_id[:13]}"
        return Outcome(error=f"{where}: {err.message}")
    except OSError as err:
        # a write to a client that has gone is Output.write's contract, not a crash;
        # any other OSError (an engine's socket, say) is worth a warning, not a traceback
        gone = isinstance(err, (BrokenPipeError, ConnectionResetError))
        log.log(
            logging.INFO if gone else logging.WARNING,
            "streaming %s in %s ended: %s",
            command.kind,
            command.container_id[:13],
            err,
        )
        return Outcome(error=f"{command.kind} failed: {err}")
    except Exception as err:
        log.exception("streaming %s in %s failed", command.kind, command.container_id[:13])
        return Outcome(error=f"{command.kind} failed: {err}")
    finally:
        for output in (io.stdout, io.stderr):
            if output is not None:
                output.close()
        if io.stdin is not None:
            io.stdin.close()  # nobody reads it any more: unblocks whoever feeds it


def feed_resizes(buffer: bytes, data: bytes, queue: ResizeQueue) -> bytes:
    """Parse resize JSON in ``buffer + data`` into ``queue``; the incomplete rest."""
    sizes, rest = channels.parse_resize(buffer + data)
    for size in sizes:
        queue.put(size)
    return rest[-4096:]  # a client sending garbage must not grow it forever


# -- WebSocket --------------------------------------------------------------------


class ChannelOutput:
    """Writes to one channel of a WebSocket channel connection."""

    def __init__(self, session: WebSocketChannels, channel: int) -> None:
        self.session, self.channel = session, channel

    def write(self, data: bytes) -> None:
        self.session.send(self.channel, data)

    def close(self) -> None:
        """Channels end with the connection (v5's CLOSE is only sent by clients)."""


class WebSocketChannels:
    """A WebSocket carrying numbered channels; one reader thread routes what arrives."""

    def __init__(self, connection: Connection, codec: channels.ChannelCodec) -> None:
        self.connection = connection
        self.codec = codec
        self._lock = threading.Lock()

    def send(self, channel: int, data: bytes) -> None:
        with self._lock:
            try:
                self.connection.send(self.codec.encode(channel, data))
            except ConnectionClosed as err:
                raise ConnectionResetError(f"the client went away: {err}") from None

    def feed(self, pipe: Pipe, data: bytes) -> None:
        """``pipe.write(data)``, but dropped once the connection is closing.

        The reader waits while a shim is not reading (back pressure); without
        this it could not see the server stopping, and the session never ended.
        """
        while not pipe.write(data, timeout=POLL):
            if self.connection.protocol.state is not State.OPEN:
                pipe.close_write()  # no more input is coming: drop the rest at once
                return

    def start_reader(
        self, route: Callable[[int, bytes], None], on_end: Callable[[], None]
    ) -> threading.Thread:
        def read() -> None:
            try:
                for message in self.connection:
                    frame = self.codec.decode(message)
                    if frame is not None:
                        route(frame.number, frame.data)
            except ConnectionClosed:
                pass
            finally:
                on_end()

        thread = threading.Thread(target=read, name="pycri-ws-reader", daemon=True)
        thread.start()
        return thread


def serve_websocket_command(connection: Connection, backend: Shim, command: Command) -> None:
    """Run one Exec/Attach over a WebSocket whose subprotocol is already negotiated."""
    codec = channels.ChannelCodec(connection.subprotocol or channels.V1)
    session = WebSocketChannels(connection, codec)
    io = StreamIO(
        stdin=Pipe() if command.stdin else None,
        stdout=ChannelOutput(session, channels.STDOUT) if command.stdout else None,
        stderr=ChannelOutput(session, channels.STDERR) if command.stderr else None,
        tty=command.tty,
        resize=ResizeQueue() if command.tty else None,
    )
    pending = b""

    def route(channel: int, data: bytes) -> None:
        nonlocal pending
        if channel == channels.STDIN and io.stdin is not None:
            session.feed(io.stdin, data)
        elif channel == channels.RESIZE and io.resize is not None:
            pending = feed_resizes(pending, data, io.resize)
        elif codec.closed_channel(channel, data) == channels.STDIN and io.stdin is not None:
            io.stdin.close_write()

    def on_end() -> None:
        io.cancelled.set()
        if io.stdin is not None:
            io.stdin.close_write()
        if io.resize is not None:
            io.resize.close()

    # an empty message on the first writable channel tells the client we are ready
    first = (
        channels.STDOUT if command.stdout else channels.STDERR if command.stderr else channels.ERROR
    )
    try:
        session.send(first, b"")
    except ConnectionResetError:
        return
    reader = session.start_reader(route, on_end)
    outcome = run_command(backend, command, io)
    try:
        session.send(channels.ERROR, outcome.status(codec.json_status, command))
    except ConnectionResetError:
        pass  # the client left before the end: nobody to tell
    connection.close()
    reader.join(LINGER)


# -- SPDY -----------------------------------------------------------------------------


def accept_command_stream(stream: SpdyStream) -> bool:
    kind = stream.header("streamType")
    if kind not in channels.STREAM_TYPES:
        return False
    if kind not in ("stdin", "resize"):
        # nobody reads what a client sends on an output stream: drop it rather than
        # buffer it until the pipe is full and the connection's reader stalls for good
        stream.input.close()
    return True


def _collect_streams(session: SpdySession, wanted: set[str]) -> dict[str, SpdyStream] | None:
    """Wait for the client to open every stream it must open; None when it does not."""
    streams: dict[str, SpdyStream] = {}
    deadline = time.monotonic() + STREAM_CREATION_TIMEOUT
    while not wanted <= streams.keys():
        stream = session.next_stream(max(deadline - time.monotonic(), 0.0))
        if stream is None:
            missing = ", ".join(sorted(wanted - streams.keys()))
            log.warning("SPDY client did not open its %s stream(s); closing", missing)
            return None
        streams[stream.header("streamType")] = stream
    return streams


def serve_spdy_command(
    session: SpdySession, protocol: str, backend: Shim, command: Command
) -> None:
    """Run one Exec/Attach over a SPDY connection negotiated at ``protocol``."""
    resizable = protocol not in ("v2.channel.k8s.io", channels.V1)
    wanted = {"error"} | {
        name
        for name, on in (
            ("stdin", command.stdin),
            ("stdout", command.stdout),
            ("stderr", command.stderr),
            ("resize", command.tty and resizable),
        )
        if on
    }
    streams = _collect_streams(session, wanted)
    if streams is None:
        session.close()
        return
    io = StreamIO(
        stdin=streams["stdin"].input if "stdin" in streams else None,
        stdout=streams.get("stdout"),
        stderr=streams.get("stderr"),
        tty=command.tty,
        resize=ResizeQueue() if "resize" in streams else None,
        cancelled=session.closed,
    )
    if io.resize is not None:
        _start_resize_reader(streams["resize"], io.resize)
    outcome = run_command(backend, command, io)
    json_status = protocol in (channels.V5, channels.V4)
    try:
        streams["error"].write(outcome.status(json_status, command))
    except OSError:
        pass
    for stream in streams.values():
        stream.close()
    # the client hangs up once it has read everything; closing first could drop frames
    session.wait_closed(LINGER)
    session.close()


def _start_resize_reader(stream: SpdyStream, queue: ResizeQueue) -> None:
    def read() -> None:
        pending = b""
        try:
            while data := stream.read():
                pending = feed_resizes(pending, data, queue)
        finally:
            queue.close()  # else a shim iterating the sizes waits forever

    threading.Thread(target=read, name="pycri-spdy-resize", daemon=True).start()
