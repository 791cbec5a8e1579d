"""SPDY/3.1 framing: what ``crictl`` and ``kubectl`` speak by default (moby/spdystream).

Only what Kubernetes streaming uses: SYN_STREAM/SYN_REPLY carrying the
``streamType``/``port``/``requestID`` headers, DATA with the FIN flag for
half closes, RST_STREAM, PING, GOAWAY; SETTINGS, HEADERS and WINDOW_UPDATE
are parsed and ignored (spdystream does no flow control either). Header
blocks are zlib-compressed, one compression context per direction for the
whole connection, primed with the SPDY/3 dictionary below.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

__all__ = [
    "DICTIONARY",
    "Data",
    "Frame",
    "FrameDecoder",
    "FrameEncoder",
    "GoAway",
    "Ping",
    "ProtocolError",
    "RstStream",
    "SynReply",
    "SynStream",
]

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN = 0x01
#: RST_STREAM status codes
PROTOCOL_ERROR, REFUSED_STREAM, CANCEL = 1, 3, 5
MAX_FRAME = (1 << 24) - 1
#: a decompressed header block is at most this big (Kubernetes sends a few dozen bytes):
#: zlib inflates up to ~1000x, so a 16 MiB frame could otherwise inflate to 16 GiB
MAX_HEADER_BLOCK = 256 * 1024

_HEADER_NAMES = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
#: the SPDY/3 header-compression dictionary: length-prefixed names, then common text.
#: No trailing NUL: its Adler-32 (0xe3c6a7c2) is the DICTID crictl's frames carry.
DICTIONARY = (
    b"".join(struct.pack(">I", len(name)) + name.encode() for name in _HEADER_NAMES)
    + _DICTIONARY_TAIL.encode()
)


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1."""


Headers = dict[str, list[str]]


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class Ignored:
    """SETTINGS, HEADERS, WINDOW_UPDATE and unknown control frames."""

    frame_type: int


Frame = SynStream | SynReply | RstStream | Data | Ping | GoAway | Ignored


def encode_headers(headers: Headers) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        key, value = name.lower().encode(), "\0".join(values).encode()
        parts += [struct.pack(">I", len(key)), key, struct.pack(">I", len(value)), value]
    return b"".join(parts)


def decode_headers(block: bytes) -> Headers:
    headers: Headers = {}
    try:
        (count,) = struct.unpack_from(">I", block)
        offset = 4
        for _ in range(count):
            (size,) = struct.unpack_from(">I", block, offset)
            name = block[offset + 4 : offset + 4 + size].decode().lower()
            offset += 4 + size
            (size,) = struct.unpack_from(">I", block, offset)
            value = block[offset + 4 : offset + 4 + size].decode()
            offset += 4 + size
            headers.setdefault(name, []).extend(value.split("\0"))
    except (struct.error, UnicodeDecodeError) as err:
        raise ProtocolError(f"malformed header block: {err}") from None
    return headers


class FrameEncoder:
    """Frames to bytes; holds the connection's header compressor."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(9, zdict=DICTIONARY)

    def _compress(self, headers: Headers) -> bytes:
        return self._zlib.compress(encode_headers(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(payload)) + payload

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            if len(frame.data) > MAX_FRAME:
                raise ValueError("DATA frame too large")
            flags = FLAG_FIN if frame.fin else 0
            return struct.pack(">II", frame.stream_id, flags << 24 | len(frame.data)) + frame.data
        if isinstance(frame, SynReply):
            block = self._compress(frame.headers)
            payload = struct.pack(">I", frame.stream_id) + block
            return self._control(SYN_REPLY, FLAG_FIN if frame.fin else 0, payload)
        if isinstance(frame, SynStream):
            block = self._compress(frame.headers)
            payload = struct.pack(">IIBB", frame.stream_id, 0, 0, 0) + block
            return self._control(SYN_STREAM, FLAG_FIN if frame.fin else 0, payload)
        if isinstance(frame, RstStream):
            return self._control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Ping):
            return self._control(PING, 0, struct.pack(">I", frame.ping_id))
        if isinstance(frame, GoAway):
            payload = struct.pack(">II", frame.last_stream_id, frame.status)
            return self._control(GOAWAY, 0, payload)
        raise ValueError(f"cannot encode {frame!r}")


class FrameDecoder:
    """Bytes to frames, incrementally; holds the connection's header decompressor."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data`` (partial frames wait for more)."""
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer)
            length = second & MAX_FRAME
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            flags = second >> 24
            if first & 0x80000000:
                frames.append(self._control(first, flags, payload))
            else:
                frames.append(Data(first & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN)))
        return frames

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._zlib.decompress(block, MAX_HEADER_BLOCK + 1)
        except zlib.error as err:
            raise ProtocolError(f"cannot decompress headers: {err}") from None
        if len(raw) > MAX_HEADER_BLOCK or self._zlib.unconsumed_tail:
            raise ProtocolError(f"header block larger than {MAX_HEADER_BLOCK} bytes")
        return decode_headers(raw)

    def _control(self, first: int, flags: int, payload: bytes) -> Frame:
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version} is not supported (only 3)")
        try:
            if kind == SYN_STREAM:
                stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
                return SynStream(stream_id, self._headers(payload[10:]), bool(flags & FLAG_FIN))
            if kind == SYN_REPLY:
                stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
                return SynReply(stream_id, self._headers(payload[4:]), bool(flags & FLAG_FIN))
            if kind == HEADERS:
                self._headers(payload[4:])  # keep the compression context in step
                return Ignored(kind)
            if kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", payload)
                return RstStream(stream_id & 0x7FFFFFFF, status)
            if kind == PING:
                return Ping(struct.unpack_from(">I", payload)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", payload)
                return GoAway(last & 0x7FFFFFFF, status)
        except struct.error:
            raise ProtocolError(f"truncated control frame of type {kind}") from None
        return Ignored(kind)
