"""The server side of one SPDY/3.1 connection: streams the client opens, in threads.

A reader thread decodes frames: SYN_STREAM is checked by ``accept`` (a
refusal is answered with RST_STREAM), answered with SYN_REPLY and only then
handed out by :meth:`SpdySession.next_stream` (a client drops data that
arrives before the reply); DATA goes to the stream's pipe, a FIN
half-closes it, PING is echoed. Writers send DATA frames from any thread. When the connection ends
every stream is cancelled, which unblocks whoever reads or waits on it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from pycri.streaming import spdy
from pycri.streaming.streams import READ_SIZE, Pipe
from pycri.streaming.transport import Transport

__all__ = ["SpdySession", "SpdyStream"]

log = logging.getLogger(__name__)

#: data frames we send are at most this big, so one stream cannot hog the connection
CHUNK = 32 * 1024
#: open streams per connection; more are refused (each costs memory: a flood of
#: SYN_STREAMs, ~26 bytes each on the wire, otherwise grew the server without bound)
MAX_STREAMS = 1024


class SpdyStream:
    """One client-opened stream: read what the client sends, write back, half close."""

    def __init__(self, session: SpdySession, stream_id: int, headers: spdy.Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.input = Pipe()
        #: set when the client resets this stream or the connection ends
        self.cancelled = threading.Event()
        self._closed = False
        #: the client half-closed (FIN): once we have too, the stream is forgotten
        self._remote_done = False
        self._lock = threading.Lock()

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    def read(self, size: int = READ_SIZE, timeout: float | None = None) -> bytes:
        return self.input.read(size, timeout)

    def write(self, data: bytes) -> None:
        if self._closed:
            raise BrokenPipeError(f"SPDY stream {self.id} is closed")
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            self.session.send(spdy.Data(self.id, bytes(view[start : start + CHUNK])))

    def close(self) -> None:
        """Half close: an empty DATA frame with FIN."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.session.send(spdy.Data(self.id, b"", fin=True))
        except OSError:
            pass  # the connection is gone: nothing left to close
        self.session._forget_if_done(self)

    def reset(self) -> None:
        self._end()
        self.session._streams.pop(self.id, None)
        try:
            self.session.send(spdy.RstStream(self.id, spdy.CANCEL))
        except OSError:
            pass

    def _end(self) -> None:
        """Both directions are over: reads see EOF, writes fail, waiters wake."""
        with self._lock:
            self._closed = True
        self.input.close()
        self.cancelled.set()


class SpdySession:
    """Serve one SPDY connection until the client leaves or :meth:`close` is called."""

    def __init__(
        self,
        transport: Transport,
        accept: Callable[[SpdyStream], bool],
        *,
        name: str = "pycri-spdy",
    ) -> None:
        self.transport = transport
        self._accept = accept
        self._accepted: queue.Queue[SpdyStream | None] = queue.Queue()
        self._encoder = spdy.FrameEncoder()
        self._decoder = spdy.FrameDecoder()
        self._send_lock = threading.Lock()
        self._streams: dict[int, SpdyStream] = {}
        self._last_stream = 0
        #: set when the connection has ended (the client left, or we closed it)
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name=name, daemon=True)

    def start(self) -> SpdySession:
        self._reader.start()
        return self

    def send(self, frame: spdy.Frame) -> None:
        # encoding shares the header compressor, so it happens under the lock too
        with self._send_lock:
            if self.closed.is_set():
                raise ConnectionResetError("the SPDY connection is closed")
            self.transport.send(self._encoder.encode(frame))

    def next_stream(self, timeout: float | None = None) -> SpdyStream | None:
        """The next accepted stream; None when the connection ended or ``timeout`` passed."""
        if self.closed.is_set() and self._accepted.empty():
            return None
        try:
            return self._accepted.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait for the client to close the connection."""
        return self.closed.wait(timeout)

    def close(self) -> None:
        """Say GOAWAY and close the connection; every stream is cancelled."""
        if not self.closed.is_set():
            try:
                self.send(spdy.GoAway(self._last_stream))
            except OSError:
                pass
        self._finish()
        self.transport.close()
        if self._reader.ident is not None and threading.current_thread() is not self._reader:
            self._reader.join(5)

    def abort(self) -> None:
        """End the connection now, as the kubelet does: reset every stream, then close.

        A client told with RST_STREAM and GOAWAY winds down cleanly; one whose
        socket merely vanishes can hang (client-go waits on its streams).
        """
        for stream in list(self._streams.values()):
            stream.reset()
        self.close()

    def _forget_if_done(self, stream: SpdyStream) -> None:
        """Both sides half-closed: the stream no longer counts against MAX_STREAMS."""
        if stream._closed and stream._remote_done:
            self._streams.pop(stream.id, None)

    def _finish(self) -> None:
        self.closed.set()
        self._accepted.put(None)  # wakes a handler waiting in next_stream
        for stream in list(self._streams.values()):
            stream.input.close_write()
            stream.cancelled.set()

    def _read_loop(self) -> None:
        try:
            while data := self.transport.recv():
                for frame in self._decoder.feed(data):
                    if not self._handle(frame):
                        return
        except spdy.ProtocolError as err:
            log.warning("closing SPDY connection: %s", err)
        except OSError as err:  # an answer (SYN_REPLY, PING) to a client that has left
            log.debug("SPDY connection ended: %s", err)
        except Exception:
            log.exception("SPDY connection failed")
        finally:
            self._finish()

    def _handle(self, frame: spdy.Frame) -> bool:
        """Act on one frame; False ends the connection."""
        if isinstance(frame, spdy.Data):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                stream.input.write(frame.data)
                if frame.fin:
                    stream.input.close_write()
                    stream._remote_done = True
                    self._forget_if_done(stream)
        elif isinstance(frame, spdy.SynStream):
            self._open(frame)
        elif isinstance(frame, spdy.RstStream):
            reset = self._streams.pop(frame.stream_id, None)
            if reset is not None:
                reset._end()
        elif isinstance(frame, spdy.Ping):
            if frame.ping_id % 2:  # odd ids are the client's: echo them back
                self.send(frame)
        elif isinstance(frame, spdy.GoAway):
            return False
        return True

    def _open(self, frame: spdy.SynStream) -> None:
        if frame.stream_id % 2 == 0 or frame.stream_id <= self._last_stream:
            self.send(spdy.RstStream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        self._last_stream = frame.stream_id
        if len(self._streams) >= MAX_STREAMS:
            self.send(spdy.RstStream(frame.stream_id, spdy.REFUSED_STREAM))
            return
        stream = SpdyStream(self, frame.stream_id, frame.headers)
        if frame.fin:
            stream.input.close_write()
            stream._remote_done = True
        if not self._accept(stream):
            self.send(spdy.RstStream(frame.stream_id, spdy.REFUSED_STREAM))
            return
        self._streams[frame.stream_id] = stream
        self.send(spdy.SynReply(frame.stream_id))
        self._accepted.put(stream)
