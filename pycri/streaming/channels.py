"""The Kubernetes channel protocol: how remote-command and port-forward bytes are framed.

Over WebSocket every message starts with its channel number (one byte; a
digit character in the ``base64.`` variants, whose payload is base64).
Remote command uses 0 stdin, 1 stdout, 2 stderr, 3 error (the final
status), 4 resize; ``v5.channel.k8s.io`` adds 255, the CLOSE signal
``[255, channel]`` that half-closes a channel (how stdin reaches EOF).
The same stream types travel as separate SPDY streams, named by their
``streamType`` header. Facts from k8s.io/apimachinery (wsstream,
util/remotecommand) and k8s.io/kubelet/pkg/cri/streaming.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pycri.streaming.streams import TerminalSize

__all__ = [
    "EXEC_WS_PROTOCOLS",
    "PORTFORWARD_WS_PROTOCOLS",
    "Channel",
    "ChannelCodec",
    "parse_resize",
    "status_for_error",
    "status_for_exit",
    "status_success",
]

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"

#: remote-command subprotocols we accept over WebSocket, best first
EXEC_WS_PROTOCOLS = (V5, V4, V4_BASE64, V1, V1_BASE64)
#: the kubelet's port-forward WebSocket subprotocols (a data/error channel pair per port)
PORTFORWARD_WS_PROTOCOLS = (V4, V4_BASE64, V1, V1_BASE64)
#: remote-command versions over SPDY (``X-Stream-Protocol-Version``), best first
EXEC_SPDY_PROTOCOLS = (V5, V4, "v3.channel.k8s.io", "v2.channel.k8s.io", V1)
PORTFORWARD_SPDY_PROTOCOL = "portforward.k8s.io"
#: client-go tunnels SPDY port-forward inside WebSocket with this subprotocol
SPDY_TUNNEL_PREFIX = "SPDY/3.1+"

#: SPDY ``streamType`` header values
STREAM_TYPES = {
    "stdin": STDIN,
    "stdout": STDOUT,
    "stderr": STDERR,
    "error": ERROR,
    "resize": RESIZE,
}


@dataclass(frozen=True)
class Channel:
    number: int
    data: bytes


@dataclass(frozen=True)
class ChannelCodec:
    """Frames for one negotiated subprotocol."""

    protocol: str

    @property
    def base64(self) -> bool:
        return "base64" in self.protocol

    @property
    def has_close(self) -> bool:
        return self.protocol == V5

    @property
    def json_status(self) -> bool:
        """v4+ report a JSON metav1.Status with the exit code; v1 a plain error text."""
        return self.protocol in (V5, V4, V4_BASE64)

    def closed_channel(self, channel: int, data: bytes) -> int | None:
        """The channel a v5 CLOSE signal ``[255, N]`` ends (a client's stdin EOF)."""
        if channel == CLOSE and self.has_close and len(data) == 1:
            return data[0]
        return None

    def encode(self, channel: int, data: bytes) -> bytes | str:
        if self.base64:
            return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
        return bytes((channel,)) + data

    def decode(self, message: bytes | str) -> Channel | None:
        """The channel and payload of a message; None for an empty or malformed one."""
        if not message:
            return None
        if self.base64:
            text = message if isinstance(message, str) else message.decode("ascii", "replace")
            try:
                return Channel(ord(text[0]) - ord("0"), base64.b64decode(text[1:], validate=True))
            except (binascii.Error, ValueError):
                return None
        raw = message.encode() if isinstance(message, str) else message
        return Channel(raw[0], raw[1:])


def parse_resize(buffer: bytes) -> tuple[list[TerminalSize], bytes]:
    """Sizes in a stream of JSON ``{"Width":W,"Height":H}`` objects, and the unparsed rest."""
    decoder = json.JSONDecoder()
    text = buffer.decode("utf-8", "replace")
    sizes: list[TerminalSize] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return sizes, b""
        try:
            value, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            return sizes, text[index:].encode()
        except (ValueError, RecursionError):
            # not an unfinished object but hostile: nesting too deep, an integer too long
            return sizes, b""
        if isinstance(value, dict):
            width, height = value.get("Width", 0), value.get("Height", 0)
            if _dimension(width) and _dimension(height):
                sizes.append(TerminalSize(width, height))


def _dimension(value: object) -> bool:
    """A terminal dimension as Go decodes one: a uint16 (JSON true is no number)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF


def _status(body: dict[str, Any]) -> bytes:
    # field order of Go's metav1.Status, for byte-for-byte kubelet parity
    return json.dumps({"metadata": {}, **body}, separators=(",", ":")).encode()


def status_success() -> bytes:
    return _status({"status": "Success"})


def status_for_exit(code: int, command: str = "") -> bytes:
    """The NonZeroExitCode status; clients read the code from ``details.causes``."""
    return _status(
        {
            "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command "
            f"{command or '[]'}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    )


def status_for_error(message: str) -> bytes:
    """What ``apierrors.NewInternalError`` sends when the runtime failed."""
    return _status(
        {
            "status": "Failure",
            "message": f"Internal error occurred: {message}",
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }
    )


def decode_status(data: bytes) -> tuple[int | None, str]:
    """(exit code, message) from a status; (0, "") for success, (None, msg) for an error."""
    if not data:
        return 0, ""
    try:
        status = json.loads(data)
    except ValueError:
        return None, data.decode("utf-8", "replace")  # a v1 plain-text error
    if not isinstance(status, dict) or status.get("status") == "Success":
        return 0, ""
    message = str(status.get("message", ""))
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", "")), message
                except ValueError:
                    break
    return None, message


def iter_ports(values: list[str]) -> Iterator[int]:
    """Ports from ``?port=80&port=8080,9090`` query values (the kubelet's NewV4Options)."""
    for value in values:
        for item in value.split(","):
            port = int(item)
            if not 0 < port < 65536:
                raise ValueError(f"port {item!r} must be between 1 and 65535")
            yield port
