"""The streaming server's network surface under hostile input, through real sockets.

Hypothesis drives raw HTTP request heads, WebSocket frames after a valid
upgrade, and SPDY/3.1 frames after a valid upgrade (also tunneled in
WebSocket) against a real StreamingServer and the scripted shim. After
every example: the connection ended or still answers, nothing was logged
at ERROR or with a traceback, no thread died of an exception, the server
holds no session for it, and a fresh exec still works. After every test:
every thread the test started is gone. Examples are derandomized, so CI
runs the same inputs every time. At the end, one regression test for each
bug the fuzzing (or reading the code it exercises) turned up.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from test_streaming_server import (
    TIMEOUT,
    RawWebSocket,
    Scripted,
    SpdyClient,
    exec_url,
    read_all,
    ws,
)

from pycri.api import api_pb2 as cri
from pycri.streaming import channels, remotecommand, spdy, spdysession
from pycri.streaming.http import HEAD_TIMEOUT
from pycri.streaming.remotecommand import Command, run_command
from pycri.streaming.server import MAX_MESSAGE, TUNNEL_PROTOCOL, StreamingServer
from pycri.streaming.spdysession import SpdySession
from pycri.streaming.streams import PIPE_LIMIT, Pipe, StreamIO, TerminalSize

#: how long the server may take to notice a hang-up and drop the session
SETTLE = 5.0
#: how long a client waits for an answer it is owed
ANSWER = 5.0


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same inputs on every run: CI is reproducible
        database=None,
        print_blob=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no slow "explain" phase
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # one server per test, many examples
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# -- fixtures: the server, and what must never happen -----------------------------------------


class Problems:
    """ERROR log records, tracebacks and thread deaths since the last check."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.thread_errors: list[str] = []
        self._seen = 0

    def excepthook(self, args: threading.ExceptHookArgs) -> None:
        self.thread_errors.append(f"{args.thread.name if args.thread else '?'}: {args.exc_value!r}")

    def check(self) -> None:
        records = self.caplog.records[self._seen :]
        self._seen = len(self.caplog.records)
        bad = [
            f"{r.name} {r.levelname}: {r.getMessage()}"
            for r in records
            if (r.levelno >= logging.ERROR or r.exc_info or "abandoned" in r.getMessage())
        ]
        assert bad == [], bad
        errors, self.thread_errors = self.thread_errors, []
        assert errors == [], errors


@pytest.fixture
def problems(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Problems:
    caplog.set_level(logging.WARNING)
    found = Problems(caplog)
    monkeypatch.setattr(threading, "excepthook", found.excepthook)
    return found


@pytest.fixture
def backend() -> Iterator[Scripted]:
    shim = Scripted()
    yield shim
    shim.close()


@pytest.fixture
def server(backend: Scripted, problems: Problems) -> Iterator[StreamingServer]:
    """A server for the whole test; afterwards every thread started meanwhile must be gone."""
    before = set(threading.enumerate())
    with StreamingServer(backend) as streaming:
        yield streaming
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline and set(threading.enumerate()) - before:
        time.sleep(0.05)
    assert [t.name for t in set(threading.enumerate()) - before] == []
    problems.check()


def sessions(server: StreamingServer) -> int:
    """Connections the server is still serving."""
    assert server._server is not None
    with server._server.lock:
        handlers = len(server._server.handler_threads)
    with server._lock:
        return max(len(server._closers), handlers)


def settle(server: StreamingServer, problems: Problems) -> None:
    """After a client hung up: no session left, nothing bad logged, and a new exec works."""
    deadline = time.monotonic() + SETTLE
    while sessions(server) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sessions(server) == 0, "a session outlived its client"
    problems.check()
    with ws(exec_url(server, "exit", "0", stdin=False), channels.V5) as conn:
        messages = read_all(conn)
    assert messages[-1] == b"\x03" + channels.status_success()
    problems.check()


def hang_up(sock: socket.socket) -> None:
    """Close for real: a bare close() leaves the connection up while a thread is in recv()."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def read_to_eof(sock: socket.socket, timeout: float = ANSWER) -> tuple[bytes, bool]:
    """Everything the server sends until it closes; (data, closed) once ``timeout`` passes."""
    data = b""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:  # reset: the server closed with our bytes unread
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


# -- 1. raw HTTP request heads ----------------------------------------------------------------

TOKEN = "\x00TOKEN\x00"  # replaced by a fresh, valid exec token
ATTACH_TOKEN = "\x00ATTACH\x00"  # a valid attach token (on any route)
FAKE_TOKEN = "A" * 32  # well formed, never issued

text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=40)
token_ish = st.sampled_from([TOKEN, ATTACH_TOKEN, FAKE_TOKEN, "", "x/y", "..", "%00", "A" * 5000])
targets = st.one_of(
    st.tuples(st.sampled_from(["exec", "attach", "portforward", "other", ""]), token_ish).map(
        lambda rt: f"/{rt[0]}/{rt[1]}"
    ),
    st.sampled_from(["*", "//[bad/exec/x", "http://h/exec/x", "/exec/" + TOKEN + "?port=a"]),
    text.map(lambda t: "/" + t.replace(" ", "")),
)
ws_key = st.sampled_from(
    [base64.b64encode(b"0123456789abcdef").decode(), "bogus", "", "A" * 200, "dGhlIHNhbXBsZQ"]
)
header_lines = st.one_of(
    st.sampled_from(
        [
            "Connection: Upgrade",
            "Connection: keep-alive, Upgrade",
            "Connection: close",
            "Upgrade: websocket",
            "Upgrade: SPDY/3.1",
            "Upgrade: spdy/3.1 extra",
            "Upgrade: h2c",
            "Upgrade: ",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Version: 8",
            "Sec-WebSocket-Version: x",
            f"Sec-WebSocket-Protocol: {channels.V5}",
            "Sec-WebSocket-Protocol: v9.x, , ,",
            f"Sec-WebSocket-Protocol: {TUNNEL_PROTOCOL}",
            f"X-Stream-Protocol-Version: {channels.V4}",
            "X-Stream-Protocol-Version: bogus",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99",
            "Content-Length: 99999999999",
            "Transfer-Encoding: chunked",
            "Host: 127.0.0.1",
            "no colon here",
            ": empty name",
            " folded continuation",
        ]
    ),
    ws_key.map(lambda key: f"Sec-WebSocket-Key: {key}"),
    st.tuples(text, text).map(lambda nv: f"{nv[0]}: {nv[1]}"),
    st.integers(100, 20_000).map(lambda n: "X-Huge: " + "h" * n),
)


UPGRADES = {
    "websocket": [
        "Host: 127.0.0.1",
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: " + base64.b64encode(b"0123456789abcdef").decode(),
        f"Sec-WebSocket-Protocol: {channels.V5}",
    ],
    "spdy": [
        "Connection: Upgrade",
        "Upgrade: SPDY/3.1",
        f"X-Stream-Protocol-Version: {channels.V4}",
    ],
    "plain": ["Host: 127.0.0.1"],
}


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    """What a client might send first: garbage, or a request head bent out of shape."""
    if draw(st.integers(0, 7)) == 0:
        garbage = draw(st.binary(max_size=600))
        return garbage + draw(st.sampled_from([b"", b"\r\n\r\n"]))
    method = draw(st.sampled_from(["GET", "GET", "GET", "POST", "get", "", "G\x00T"]))
    target = draw(st.one_of(st.just(f"/exec/{TOKEN}"), targets))
    version = draw(st.sampled_from(["HTTP/1.1"] * 12 + ["HTTP/1.0", "HTTP/2", "HTTP/1.1 x", ""]))
    line = f"{method} {target} {version}"
    # a well-formed upgrade, then some of its lines dropped and odd ones added
    base = UPGRADES[draw(st.sampled_from(sorted(UPGRADES)))]
    keep = draw(st.lists(st.integers(0, 5), min_size=len(base), max_size=len(base)))
    headers = [header for header, k in zip(base, keep, strict=True) if k]
    headers = draw(st.permutations(headers + draw(st.lists(header_lines, max_size=6))))
    if draw(st.integers(0, 9)) == 0:
        headers += [f"X-Many-{i}: v" for i in range(draw(st.integers(100, 400)))]
    eol = draw(st.sampled_from(["\r\n"] * 12 + ["\n", "\r"]))
    head = (eol.join([line, *headers]) + eol + eol).encode("latin-1")
    if draw(st.integers(0, 7)) == 0:  # the head is cut short somewhere
        head = head[: draw(st.integers(0, len(head)))]
    return head + draw(st.sampled_from([b"", b"", b"trailing body bytes", b"\x81\x80abcd"]))


def fill_tokens(server: StreamingServer, request: bytes) -> bytes:
    """Each placeholder becomes a fresh token (so a valid upgrade can happen)."""

    def make(placeholder: str) -> str:
        if placeholder == TOKEN:
            return exec_url(server, "exit", "0")
        return server.get_attach(cri.AttachRequest(container_id="c", stdout=True))

    for placeholder in (TOKEN, ATTACH_TOKEN):
        while placeholder.encode() in request:
            token = make(placeholder).rsplit("/", 1)[1]
            request = request.replace(placeholder.encode(), token.encode(), 1)
    return request


@fuzz_settings(200)
@given(request=http_requests())
def test_fuzz_http_request_heads(
    server: StreamingServer, problems: Problems, request: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        try:
            sock.sendall(fill_tokens(server, request))
            sock.shutdown(socket.SHUT_WR)  # nothing more is coming: the server must not wait
        except OSError:
            pass  # it already hung up on us (a head too large)
        answer, closed = read_to_eof(sock)
    assert closed, f"the server neither answered nor closed: {answer[:200]!r}"
    if answer:
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
        status = int(status_line.split()[1])
        assert status == 101 or 400 <= status < 600, status_line
        event(f"answered {status}")
    else:
        event("closed without an answer")
    settle(server, problems)


# -- 2. WebSocket frames after a valid upgrade ------------------------------------------------

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MASK = b"\x1f\x2e\x3d\x4c"


def ws_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    declared: int | None = None,
) -> bytes:
    """One client frame, as RFC 6455 lays it out (or, with the keywords, does not)."""
    size = len(payload) if declared is None else declared
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", size)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", size)
    if not masked:
        return head + payload
    key = int.from_bytes((MASK * (len(payload) // 4 + 1))[: len(payload)], "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")
    return head + MASK + body


@dataclass
class WsOp:
    """Bytes to send, and whether a well-behaved session must survive them."""

    wire: bytes
    benign: bool
    #: may leave a frame unfinished: whatever follows is read as its payload
    desync: bool = False


def channel_message(channel: int, payload: bytes, protocol: str) -> bytes:
    codec = channels.ChannelCodec(protocol)
    message = codec.encode(channel, payload)
    if isinstance(message, str):
        return ws_frame(TEXT, message.encode())
    return ws_frame(BINARY, message)


resize_json = st.one_of(
    st.fixed_dictionaries(
        {"Width": st.integers(-5, 70_000), "Height": st.integers(-(1 << 70), 1 << 70)}
    ).map(lambda d: f'{{"Width":{d["Width"]},"Height":{d["Height"]}}}'.encode()),
    st.sampled_from(
        [
            b'{"Width":80,"Height":24}\n{"Width":1',
            b'00,"Height":30}',
            b'{"Width":true,"Height":1e999}',
            b'{"Width":"80","Height":null}',
            b"[1,2,3]",
            b"not json at all {",
            b"\xff\xfe\xfd",
            b'{"Width":' + b"9" * 5000 + b',"Height":1}',
        ]
    ),
    st.integers(900, 20_000).map(lambda n: b"[" * n),
    st.integers(900, 20_000).map(lambda n: b'{"a":' * n),
    st.binary(max_size=200),
)


@st.composite
def ws_benign(draw: st.DrawFn, protocol: str) -> WsOp:
    """Frames a sane client might send: the session must keep working."""
    kind = draw(st.sampled_from(["stdin", "resize", "other", "ping", "pong", "fragments"]))
    if kind == "stdin":
        return WsOp(channel_message(channels.STDIN, draw(st.binary(max_size=300)), protocol), True)
    if kind == "resize":
        return WsOp(channel_message(channels.RESIZE, draw(resize_json), protocol), True)
    if kind == "other":
        number = draw(st.sampled_from([1, 2, 3, 5, 9, 254]))
        return WsOp(channel_message(number, draw(st.binary(max_size=100)), protocol), True)
    if kind in ("ping", "pong"):
        opcode = PING if kind == "ping" else PONG
        return WsOp(ws_frame(opcode, draw(st.binary(max_size=125))), True)
    # one message in pieces, a ping in between
    message = channel_message(channels.STDIN, draw(st.binary(min_size=2, max_size=300)), protocol)
    opcode, body = message[0] & 0x0F, unmask(message)
    cut = draw(st.integers(1, len(body) - 1))
    wire = (
        ws_frame(opcode, body[:cut], fin=False)
        + ws_frame(PING, b"mid")
        + ws_frame(CONTINUATION, body[cut:])
    )
    return WsOp(wire, True)


def unmask(frame: bytes) -> bytes:
    """The payload of a frame built by ws_frame (masked)."""
    size = frame[1] & 0x7F
    start = 2 + {126: 2, 127: 8}.get(size, 0)
    body = frame[start + 4 :]
    key = int.from_bytes((MASK * (len(body) // 4 + 1))[: len(body)], "big")
    return (int.from_bytes(body, "big") ^ key).to_bytes(len(body), "big")


@st.composite
def ws_hostile(draw: st.DrawFn, protocol: str) -> WsOp:
    """Frames that break the rules: the server may close, but must not break."""
    payload = draw(st.binary(max_size=200))
    kind = draw(
        st.sampled_from(
            [
                "opcode",
                "rsv",
                "unmasked",
                "big-control",
                "fragmented-control",
                "bare-continuation",
                "interleaved",
                "bad-utf8",
                "close",
                "huge-length",
                "too-long",
                "stdin-close",
                "random",
                "channel-close",
            ]
        )
    )
    if kind == "opcode":
        opcode = draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]))
        wire = ws_frame(opcode, payload)
    elif kind == "rsv":
        wire = ws_frame(BINARY, b"\x00" + payload, rsv=draw(st.integers(1, 7)))
    elif kind == "unmasked":
        wire = ws_frame(BINARY, b"\x00" + payload, masked=False)
    elif kind == "big-control":
        wire = ws_frame(
            draw(st.sampled_from([PING, PONG, CLOSE])), b"p" * draw(st.integers(126, 70_000))
        )
    elif kind == "fragmented-control":
        wire = ws_frame(PING, payload[:100], fin=False)
    elif kind == "bare-continuation":
        wire = ws_frame(CONTINUATION, payload)
    elif kind == "interleaved":
        wire = ws_frame(BINARY, b"\x00a", fin=False) + ws_frame(BINARY, b"\x00b")
    elif kind == "bad-utf8":
        wire = ws_frame(TEXT, b"0\xff\xfe" + payload)
    elif kind == "close":
        body = draw(
            st.one_of(
                st.just(b""),
                st.just(b"\x03"),  # one byte: not a code
                st.tuples(st.integers(0, 65535), st.binary(max_size=60)).map(
                    lambda cr: struct.pack(">H", cr[0]) + cr[1]
                ),
            )
        )
        wire = ws_frame(CLOSE, body)
    elif kind == "huge-length":  # a length no server should believe
        declared = draw(st.sampled_from([MAX_MESSAGE + 1, 1 << 40, (1 << 63) - 1]))
        wire = ws_frame(BINARY, b"\x00", declared=declared)
    elif kind == "too-long":  # declares more than it sends, then the next frame is eaten
        wire = ws_frame(
            BINARY, b"\x00" + payload, declared=len(payload) + 1 + draw(st.integers(1, 5000))
        )
    elif kind == "stdin-close":
        wire = channel_message(channels.CLOSE, bytes([channels.STDIN]), protocol)
    elif kind == "channel-close":
        wire = channel_message(channels.CLOSE, payload[:3], protocol)
    else:
        wire = payload
    return WsOp(wire, False, desync=kind in ("too-long", "random"))


class ServerFrames:
    """The frames a server sends a raw client (unmasked), read incrementally."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.frames: list[tuple[int, bytes]] = []
        self.closed = False

    def _parse(self) -> None:
        while len(self.buffer) >= 2:
            size, start = self.buffer[1] & 0x7F, 2
            if size == 126:
                if len(self.buffer) < 4:
                    return
                (size,), start = struct.unpack_from(">H", self.buffer, 2), 4
            elif size == 127:
                if len(self.buffer) < 10:
                    return
                (size,), start = struct.unpack_from(">Q", self.buffer, 2), 10
            if len(self.buffer) < start + size:
                return
            self.frames.append((self.buffer[0] & 0x0F, self.buffer[start : start + size]))
            self.buffer = self.buffer[start + size :]

    def wait(self, done: Callable[[], bool], timeout: float = ANSWER) -> bool:
        """Read until ``done()`` or the server closes; whether ``done()`` became true."""
        deadline = time.monotonic() + timeout
        while not done() and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buffer += chunk
            self._parse()
        return done()

    def channel_data(self, protocol: str, number: int) -> bytes:
        codec = channels.ChannelCodec(protocol)
        found = b""
        for opcode, payload in self.frames:
            if opcode in (TEXT, BINARY):
                message = payload.decode() if opcode == TEXT else payload
                frame = codec.decode(message)
                if frame is not None and frame.number == number:
                    found += frame.data
        return found

    def server_closing(self) -> bool:
        return self.closed or any(opcode == CLOSE for opcode, _ in self.frames)


ws_protocols = st.sampled_from(channels.EXEC_WS_PROTOCOLS)


@st.composite
def ws_sessions(draw: st.DrawFn) -> tuple[str, bool, list[WsOp], str]:
    protocol = draw(ws_protocols)
    tty = draw(st.booleans())
    op = st.one_of(ws_benign(protocol), ws_benign(protocol), ws_hostile(protocol))
    ops = draw(st.lists(op, max_size=8))
    ending = draw(st.sampled_from(["close-frame", "hang-up", "half-close", "truncated", "probe"]))
    return protocol, tty, ops, ending


@fuzz_settings(120)
@given(session=ws_sessions())
def test_fuzz_websocket_frames(
    server: StreamingServer, problems: Problems, session: tuple[str, bool, list[WsOp], str]
) -> None:
    protocol, tty, ops, ending = session
    conn = RawWebSocket(exec_url(server, "cat", tty=tty), protocol)
    try:
        assert conn.head.startswith("HTTP/1.1 101"), conn.head
        frames = ServerFrames(conn.sock)
        assert frames.wait(lambda: bool(frames.frames))  # the "ready" message
        try:
            for op in ops:
                conn.sock.sendall(op.wire)
            in_step = not any(op.desync for op in ops)  # the server reads frames where we do
            if in_step and (ending == "probe" or all(op.benign for op in ops)):
                marker = b"probe-%d" % len(ops)
                conn.sock.sendall(channel_message(channels.STDIN, marker, protocol))
                echoed = frames.wait(lambda: marker in frames.channel_data(protocol, 1))
                if all(op.benign for op in ops):
                    assert echoed, "a session fed only valid frames stopped answering"
                elif not echoed:
                    assert frames.wait(frames.server_closing), "neither answer nor close"
            if ending == "close-frame":
                conn.sock.sendall(ws_frame(CLOSE, struct.pack(">H", 1000)))
                frames.wait(lambda: False, timeout=0.2)
            elif ending == "half-close":
                conn.sock.shutdown(socket.SHUT_WR)
                assert frames.wait(lambda: frames.closed), "the server did not close after EOF"
            elif ending == "truncated":
                conn.sock.sendall(ws_frame(BINARY, b"\x00" + b"t" * 300)[:50])
        except OSError:
            pass  # the server hung up mid-way: allowed, it was sent garbage
        event("the server hung up" if frames.server_closing() else "the session was open")
    finally:
        hang_up(conn.sock)
    settle(server, problems)


# -- 3. SPDY frames after a valid upgrade (raw, and tunneled in WebSocket) -----------------------


@dataclass
class SpdyConn:
    """A client after ``101``: raw bytes out, decoded frames in (a reader thread)."""

    sock: socket.socket
    tunnel: bool
    encoder: spdy.FrameEncoder = field(default_factory=spdy.FrameEncoder)
    frames: list[spdy.Frame] = field(default_factory=list)
    closed: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> SpdyConn:
        threading.Thread(target=self._read, name="fuzz-spdy-client", daemon=True).start()
        return self

    def _read(self) -> None:
        decoder, ws_frames = spdy.FrameDecoder(), ServerFrames(self.sock)
        try:
            while chunk := self.sock.recv(65536):
                if self.tunnel:
                    ws_frames.buffer += chunk
                    ws_frames._parse()
                    chunk = b"".join(p for op, p in ws_frames.frames if op == BINARY)
                    if any(op == CLOSE for op, _ in ws_frames.frames):
                        self.sock.sendall(ws_frame(CLOSE, b""))  # as a real client answers
                    ws_frames.frames.clear()
                got = decoder.feed(chunk)
                with self.cond:
                    self.frames += got
                    self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def send(self, wire: bytes) -> None:
        self.sock.sendall(ws_frame(BINARY, wire) if self.tunnel and wire else wire)

    def wait(self, done: Callable[[], bool], timeout: float = ANSWER) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: done() or self.closed, timeout) and done()


def open_spdy(url: str, protocol: str, tunnel: bool) -> SpdyConn:
    if tunnel:
        conn = RawWebSocket(url, TUNNEL_PROTOCOL)
        assert conn.head.startswith("HTTP/1.1 101"), conn.head
        return SpdyConn(conn.sock, tunnel=True).start()
    hostport, path = url.split("://", 1)[1].split("/", 1)
    host, port = hostport.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    sock.sendall(
        f"POST /{path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: Upgrade\r\n"
        f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    sock.settimeout(None)
    return SpdyConn(sock, tunnel=False).start()


@dataclass(frozen=True)
class SpdyOp:
    """One step; ``kind`` decides what the other fields mean."""

    kind: str
    number: int = 0
    payload: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    fin: bool = False

    @property
    def benign(self) -> bool:
        return self.kind in ("syn", "data", "rst", "ping", "ignored", "headers")


stream_types = st.sampled_from(
    ["stdin", "stdout", "stderr", "error", "resize", "data", "bogus", ""]
)
extra_headers = st.lists(
    st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=20)), max_size=3
)
spdy_headers = st.tuples(
    stream_types,
    st.sampled_from(["", "80", "1", "2", "0", "65536", "-1", "x", "9" * 5000]),
    st.sampled_from(["", "0", "1", "7", "a"]),
    extra_headers,
).map(
    lambda t: tuple(
        pair
        for pair in (("streamType", t[0]), ("port", t[1]), ("requestID", t[2]), *t[3])
        if pair[1] or pair[0] not in ("port", "requestID")
    )
)
#: which stream an op targets: an index into the streams opened so far, or a raw id
stream_ref = st.one_of(st.integers(0, 6), st.integers(-((1 << 31) - 1), -1))

spdy_ops = st.one_of(
    st.builds(
        SpdyOp,
        kind=st.just("syn"),
        number=st.sampled_from([0, 0, 0, 1, 2, 3, 4]),  # next id, reused, even, zero, max
        headers=spdy_headers,
        fin=st.booleans(),
    ),
    st.builds(
        SpdyOp,
        kind=st.just("data"),
        number=stream_ref,
        payload=st.one_of(st.binary(max_size=300), resize_json),
        fin=st.booleans(),
    ),
    st.builds(SpdyOp, kind=st.just("rst"), number=stream_ref, payload=st.binary(max_size=0)),
    st.builds(SpdyOp, kind=st.just("ping"), number=st.integers(0, (1 << 32) - 1)),
    st.builds(
        SpdyOp,
        kind=st.just("ignored"),
        number=st.sampled_from([4, 5, 9, 10, 0xFFFF]),
        payload=st.binary(max_size=40),
    ),
    st.builds(SpdyOp, kind=st.just("headers"), headers=extra_headers),
    st.builds(
        SpdyOp,
        kind=st.sampled_from(
            [
                "random",
                "version",
                "bad-zlib",
                "bad-block",
                "truncated-control",
                "too-long",
                "goaway",
            ]
        ),
        number=st.integers(0, 7),
        payload=st.binary(max_size=300),
    ),
)


class SpdyPlayer:
    """Turns ops into bytes on one connection, tracking the stream ids it opened."""

    def __init__(self, conn: SpdyConn) -> None:
        self.conn = conn
        self.opened: list[int] = []
        self.last = -1

    def stream(self, ref: int) -> int:
        if ref >= 0:
            return self.opened[ref % len(self.opened)] if self.opened else 1
        return -ref

    def control(self, kind: int, payload: bytes, flags: int = 0) -> bytes:
        return struct.pack(">HHI", 0x8000 | 3, kind, flags << 24 | len(payload)) + payload

    def play(self, op: SpdyOp) -> None:
        enc = self.conn.encoder
        if op.kind == "syn":
            choice = [self.last + 2, max(self.last, 1), self.last + 3, 0, 0x7FFFFFFF]
            stream_id = min(choice[op.number], 0x7FFFFFFF)
            if op.number == 0:
                self.last = stream_id
                self.opened.append(stream_id)
            headers = {name.lower(): [value] for name, value in op.headers}
            wire = enc.encode(spdy.SynStream(stream_id, headers, fin=op.fin))
        elif op.kind == "data":
            wire = enc.encode(spdy.Data(self.stream(op.number), op.payload, fin=op.fin))
        elif op.kind == "rst":
            wire = enc.encode(spdy.RstStream(self.stream(op.number), spdy.CANCEL))
        elif op.kind == "ping":
            wire = enc.encode(spdy.Ping(op.number))
        elif op.kind == "ignored":
            wire = self.control(op.number, op.payload)
        elif op.kind == "headers":
            block = enc._compress({name.lower(): [value] for name, value in op.headers})
            wire = self.control(spdy.HEADERS, struct.pack(">I", self.stream(0)) + block)
        elif op.kind == "random":
            wire = op.payload
        elif op.kind == "version":
            wire = struct.pack(">HHI", 0x8000 | op.number, 1, len(op.payload)) + op.payload
        elif op.kind == "bad-zlib":
            wire = self.control(spdy.SYN_STREAM, struct.pack(">IIH", 99, 0, 0) + op.payload)
        elif op.kind == "bad-block":  # compressed fine, but not a header block
            block = enc._zlib.compress(op.payload) + enc._zlib.flush(zlib.Z_SYNC_FLUSH)
            wire = self.control(spdy.SYN_STREAM, struct.pack(">IIH", 99, 0, 0) + block)
        elif op.kind == "truncated-control":
            kind = [spdy.SYN_STREAM, spdy.SYN_REPLY, spdy.RST_STREAM, spdy.PING, spdy.GOAWAY][
                op.number % 5
            ]
            wire = self.control(kind, op.payload[: op.number % 4])
        elif op.kind == "too-long":
            wire = struct.pack(">II", 1, len(op.payload) + 1000) + op.payload
        else:
            wire = enc.encode(spdy.GoAway(max(self.last, 0)))
        self.conn.send(wire)


@st.composite
def spdy_sessions(draw: st.DrawFn) -> tuple[str, str, bool, list[SpdyOp], str]:
    route = draw(st.sampled_from(["exec", "exec", "portforward"]))
    tunnel = route == "portforward" and draw(st.booleans())
    protocol = (
        channels.PORTFORWARD_SPDY_PROTOCOL
        if route == "portforward"
        else draw(st.sampled_from(channels.EXEC_SPDY_PROTOCOLS))
    )
    ops = draw(st.lists(spdy_ops, max_size=10))
    ending = draw(st.sampled_from(["hang-up", "goaway", "half-close"]))
    return route, protocol, tunnel, ops, ending


@fuzz_settings(120)
@given(session=spdy_sessions())
def test_fuzz_spdy_frames(
    server: StreamingServer,
    problems: Problems,
    session: tuple[str, str, bool, list[SpdyOp], str],
) -> None:
    route, protocol, tunnel, ops, ending = session
    if route == "exec":
        url = exec_url(server, "cat", tty=protocol not in ("v2.channel.k8s.io", channels.V1))
    else:
        url = server.get_port_forward(cri.PortForwardRequest(pod_sandbox_id="p1"))
    conn = open_spdy(url, protocol, tunnel)
    player = SpdyPlayer(conn)
    try:
        for op in ops:
            player.play(op)
        if all(op.benign for op in ops):
            # framing is intact and nothing asked to end: the connection still answers
            probe = 0x7FFF_FFF1
            player.play(SpdyOp("ping", probe))
            assert conn.wait(lambda: spdy.Ping(probe) in conn.frames), (
                "a SPDY session fed only valid frames stopped answering pings"
            )
        if ending == "goaway":
            conn.send(conn.encoder.encode(spdy.GoAway(0)))
        elif ending == "half-close":
            conn.sock.shutdown(socket.SHUT_WR)
        if ending == "half-close" or (ending == "goaway" and all(op.benign for op in ops)):
            # (after garbage the GOAWAY may be read as part of some other frame)
            assert conn.wait(lambda: False) is False
            assert conn.closed, "the server kept a SPDY connection its client ended"
    except OSError:
        pass  # the server hung up mid-way: allowed, it was sent garbage
    finally:
        hang_up(conn.sock)
    event(f"{route}{' tunneled in WebSocket' if tunnel else ''}")
    event("the server hung up" if conn.closed else "the session was open")
    settle(server, problems)


# -- regressions: each of these failed before its fix -----------------------------------------

FLOOD = 2 * PIPE_LIMIT  # more than a pipe holds: a reader that must keep up would stall


def flood(client: SpdyClient, stream_id: int, size: int = FLOOD) -> None:
    chunk = b"f" * 65536
    for _ in range(size // len(chunk)):
        client.send(spdy.Data(stream_id, chunk))


def test_a_client_that_hangs_up_mid_head_is_dropped_at_once(server: StreamingServer) -> None:
    """A peek never sees the EOF behind pending bytes: this held a thread for HEAD_TIMEOUT."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /exec/")
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        answer, closed = read_to_eof(sock, timeout=HEAD_TIMEOUT)
    assert closed
    assert answer == b""
    assert time.monotonic() - started < 2


def test_hostile_resize_json_is_skipped() -> None:
    """Deep nesting raised RecursionError and long digits ValueError: the reader thread died."""
    for hostile in (b"[" * 5000, b'{"Width":' + b"9" * 5000 + b',"Height":1}', b'{"a":' * 3000):
        assert channels.parse_resize(hostile) == ([], b"")
    sizes, _ = channels.parse_resize(
        b'{"Width":70000,"Height":1}{"Width":true,"Height":2}{"Width":80,"Height":24}'
    )
    assert sizes == [TerminalSize(80, 24)]  # sizes are uint16, as Go decodes them


def test_websocket_resize_garbage_does_not_end_the_session(
    server: StreamingServer, problems: Problems
) -> None:
    with ws(exec_url(server, "sizes", "1", tty=True), channels.V5) as conn:
        conn.send(b"\x04" + b"[" * 5000)
        conn.send(b'\x04{"Width":80,"Height":24}')
        messages = read_all(conn)
    assert b"\x0180x24\n" in messages
    assert messages[-1] == b"\x03" + channels.status_success()
    problems.check()


def test_spdy_resize_garbage_does_not_hang_the_shim(
    server: StreamingServer, problems: Problems
) -> None:
    """The resize reader died without closing the queue: a shim iterating sizes hung forever."""
    client = SpdyClient(exec_url(server, "sizes", "1", tty=True), channels.V4)
    try:
        error = client.open(streamType="error")
        client.open(streamType="stdin")
        stdout = client.open(streamType="stdout")
        resize = client.open(streamType="resize")
        client.send(spdy.Data(resize, b"[" * 5000))
        client.send(spdy.Data(resize, b'{"Width":80,"Height":24}'))
        assert client.read_until_fin(stdout) == b"80x24\n"
        assert client.read_until_fin(error) == channels.status_success()
    finally:
        hang_up(client.sock)
    problems.check()


def test_a_shim_writing_to_a_departed_client_is_not_a_crash(
    backend: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    """Output.write raises OSError once the client is gone; that was logged as a failure."""

    class Gone:
        def write(self, data: bytes) -> None:
            raise ConnectionResetError("the client went away")

        def close(self) -> None:
            pass

    stdin = Pipe()
    stdin.write(b"data")
    stdin.close_write()
    io = StreamIO(stdin=stdin, stdout=Gone())
    outcome = run_command(backend, Command("c1", ("cat",), True, True, False, False), io)
    assert "client went away" in outcome.error
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def test_a_spdy_answer_to_a_departed_client_is_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A PING echo (or SYN_REPLY) to a client that left was logged as "SPDY connection failed"."""

    class Departed:
        def __init__(self) -> None:
            self.incoming = [spdy.FrameEncoder().encode(spdy.Ping(1)), b""]

        def recv(self) -> bytes:
            return self.incoming.pop(0)

        def send(self, data: bytes) -> None:
            raise BrokenPipeError("the client went away")

        def close(self) -> None:
            pass

    session = SpdySession(Departed(), lambda stream: True).start()
    assert session.wait_closed(TIMEOUT)
    session.close()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def test_a_header_block_cannot_inflate_without_bound() -> None:
    """zlib inflates ~1000x: a 16 MiB SYN_STREAM could become 16 GiB in memory."""
    encoder = zlib.compressobj(9, zdict=spdy.DICTIONARY)
    bomb = encoder.compress(b"\0" * (64 << 20)) + encoder.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 128 * 1024
    payload = struct.pack(">IIH", 1, 0, 0) + bomb
    frame = struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(payload)) + payload
    with pytest.raises(spdy.ProtocolError, match="larger than"):
        spdy.FrameDecoder().feed(frame)


def test_a_full_pipe_releases_its_writer_at_end_of_input() -> None:
    """close_write did not wake a writer waiting for room: the SPDY reader was stuck for good."""
    pipe = Pipe(limit=4)
    assert pipe.write(b"full")
    assert pipe.write(b"more", timeout=0.05) is False  # no room: nothing queued
    writer = threading.Thread(target=pipe.write, args=(b"blocked",))
    writer.start()
    time.sleep(0.05)
    assert writer.is_alive()
    pipe.close_write()
    writer.join(TIMEOUT)
    assert not writer.is_alive()
    assert pipe.read() == b"full"
    assert pipe.read() == b""


def test_data_on_a_spdy_output_stream_does_not_stall_the_session(
    server: StreamingServer, problems: Problems
) -> None:
    """Nobody reads what a client sends on stdout: past a pipe's worth the reader blocked."""
    client = SpdyClient(exec_url(server, "cat"), channels.V4)
    try:
        error = client.open(streamType="error")
        stdin = client.open(streamType="stdin")
        stdout = client.open(streamType="stdout")
        flood(client, stdout)
        client.open(streamType="stderr")
        client.send(spdy.Data(stdin, b"still here", fin=True))
        assert client.read_until_fin(stdout) == b"still here"
        assert client.read_until_fin(error) == channels.status_success()
    finally:
        hang_up(client.sock)
    problems.check()


def test_data_on_a_port_forward_error_stream_does_not_stall_the_session(
    server: StreamingServer, problems: Problems
) -> None:
    url = server.get_port_forward(cri.PortForwardRequest(pod_sandbox_id="p1"))
    client = SpdyClient(url, channels.PORTFORWARD_SPDY_PROTOCOL)
    try:
        error = client.open(streamType="error", port="80", requestID="0")
        flood(client, error)
        data = client.open(streamType="data", port="80", requestID="0")
        client.send(spdy.Data(data, b"ping", fin=True))
        assert client.read_until_fin(data) == b"PING"
    finally:
        hang_up(client.sock)
    problems.check()


def test_a_spdy_reader_blocked_on_a_full_pipe_ends_with_its_session(
    server: StreamingServer, problems: Problems, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stdin sent before the command starts fills its pipe; closing the session left the
    reader thread waiting for room forever (the server fixture checks the threads)."""
    monkeypatch.setattr(remotecommand, "STREAM_CREATION_TIMEOUT", 0.5)
    client = SpdyClient(exec_url(server, "cat"), channels.V4)
    try:
        stdin = client.open(streamType="stdin")
        flood(client, stdin, PIPE_LIMIT + 65536)
        with client.cond:  # the server gives up on the streams that never came
            assert client.cond.wait_for(lambda: client.closed, TIMEOUT)
    finally:
        hang_up(client.sock)
    deadline = time.monotonic() + SETTLE
    while sessions(server) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sessions(server) == 0
    assert not [t for t in threading.enumerate() if t.name == "pycri-spdy" and t.is_alive()]


def test_stopping_the_server_cancels_a_websocket_session_with_full_stdin(
    backend: Scripted,
) -> None:
    """The reader waited for room in stdin the shim never read: it never saw the server
    stopping, so the shim was not cancelled and stop() waited for the shim."""
    streaming = StreamingServer(backend).start()
    try:
        with ws(exec_url(streaming, "hang"), channels.V5) as conn:
            assert conn.recv(timeout=TIMEOUT) == b"\x01"
            for _ in range(FLOOD // 65536):
                conn.send(b"\x00" + b"x" * 65536)
            time.sleep(0.2)
            started = time.monotonic()
            streaming.stop()
            assert backend.saw_cancel.is_set()
            assert time.monotonic() - started < TIMEOUT / 2  # not the shim's own timeout
    finally:
        streaming.stop()


def test_frames_sent_before_the_websocket_handshake_answer_are_refused(
    server: StreamingServer, problems: Problems
) -> None:
    """websockets parsed them while still answering the handshake and, when it rejected the
    request, tripped over its own EOF (AssertionError, logged as a failed connection)."""
    hostport = server.url.split("://", 1)[1]
    path = exec_url(server, "cat").split(hostport, 1)[1]
    head = "\r\n".join(
        [
            f"GET {path} HTTP/1.1",
            f"Host: {hostport}",
            *UPGRADES["websocket"][1:5],
            "Sec-WebSocket-Protocol: v9.x",  # one the server rejects
        ]
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + ws_frame(BINARY, b"\x00early"))
        answer, closed = read_to_eof(sock)
    assert closed
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"before the WebSocket handshake completed" in answer
    problems.check()


def test_a_spdy_client_cannot_open_streams_without_bound(
    server: StreamingServer, problems: Problems, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every SYN_STREAM was accepted and kept: ~26 bytes on the wire held ~4 KiB of server
    memory for the connection's life (50,000 of them: 1.3 MB sent, 219 MB held)."""
    monkeypatch.setattr(spdysession, "MAX_STREAMS", 8)
    conn = open_spdy(exec_url(server, "cat"), channels.V4, tunnel=False)

    def refused() -> list[int]:
        with conn.cond:
            return [
                f.stream_id
                for f in conn.frames
                if isinstance(f, spdy.RstStream) and f.status == spdy.REFUSED_STREAM
            ]

    try:
        for stream_id, kind in zip(
            (1, 3, 5, 7), ("error", "stdin", "stdout", "stderr"), strict=True
        ):
            conn.send(conn.encoder.encode(spdy.SynStream(stream_id, {"streamtype": [kind]})))
        extra = list(range(9, 49, 2))  # 20 more: 4 fit, 16 are refused
        for stream_id in extra:
            conn.send(conn.encoder.encode(spdy.SynStream(stream_id, {"streamtype": ["stdout"]})))
        assert conn.wait(lambda: len(refused()) == 16), refused()
        assert refused() == extra[4:]
        conn.send(conn.encoder.encode(spdy.Data(3, b"still works", fin=True)))
        echoed = spdy.Data(5, b"still works")
        assert conn.wait(lambda: echoed in conn.frames), "the session stopped working"
    finally:
        hang_up(conn.sock)
    problems.check()


def test_finished_spdy_streams_stop_counting(
    server: StreamingServer, problems: Problems, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What client-go does per forwarded connection, more times than MAX_STREAMS allows
    at once: streams both sides have finished (or reset) must be forgotten."""
    monkeypatch.setattr(spdysession, "MAX_STREAMS", 8)
    url = server.get_port_forward(cri.PortForwardRequest(pod_sandbox_id="p1"))
    client = SpdyClient(url, channels.PORTFORWARD_SPDY_PROTOCOL)
    try:
        for request in range(10):
            error = client.open(streamType="error", port="80", requestID=str(request))
            client.send(spdy.Data(error, b"", fin=True))  # client-go does not write there
            data = client.open(streamType="data", port="80", requestID=str(request))
            client.send(spdy.Data(data, b"ping %d" % request, fin=True))
            assert client.read_until_fin(data) == b"PING %d" % request
            assert client.read_until_fin(error) == b""
            client.send(spdy.RstStream(data, spdy.CANCEL))  # and then it resets the data
    finally:
        hang_up(client.sock)
    problems.check()
