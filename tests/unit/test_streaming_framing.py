"""Wire formats: the channel protocol, metav1.Status payloads and SPDY/3.1 frames."""

from __future__ import annotations

import json
import zlib

import pytest

from pycri.streaming import channels, spdy
from pycri.streaming.streams import TerminalSize

# Captured from crictl v1.36: `crictl exec -i` (SYN_STREAM of the error stream)
# and `crictl port-forward` (the error stream of the first connection).
CRICTL_EXEC_SYN = bytes.fromhex(
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a"
    "0a6800000000ffff"
)
CRICTL_PORTFORWARD_SYN = bytes.fromhex(
    "800300010000003d0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a080"
    "8614cb45a024cc6461c0c0c0c0590489c44c50e2663400000000ffff"
)


# -- channels ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [channels.V5, channels.V4, channels.V1])
def test_binary_channels_prefix_a_byte(protocol: str) -> None:
    codec = channels.ChannelCodec(protocol)
    assert codec.encode(1, b"out") == b"\x01out"
    frame = codec.decode(b"\x00in")
    assert frame is not None
    assert (frame.number, frame.data) == (0, b"in")
    assert codec.decode(b"") is None


@pytest.mark.parametrize("protocol", [channels.V4_BASE64, channels.V1_BASE64])
def test_base64_channels_prefix_a_digit(protocol: str) -> None:
    codec = channels.ChannelCodec(protocol)
    assert codec.encode(1, b"\n") == "1Cg=="
    frame = codec.decode("0Zm9vCg==")
    assert frame is not None
    assert (frame.number, frame.data) == (0, b"foo\n")
    assert codec.decode("0not base64!") is None


def test_only_v5_has_the_close_signal_and_v4_plus_json_status() -> None:
    v5, v4, v1 = (channels.ChannelCodec(p) for p in (channels.V5, channels.V4, channels.V1))
    assert v5.closed_channel(255, b"\x00") == 0
    assert v5.closed_channel(255, b"") is None
    assert v4.closed_channel(255, b"\x00") is None
    assert v5.json_status
    assert v4.json_status
    assert not v1.json_status


def test_resize_messages_are_a_stream_of_json_objects() -> None:
    sizes, rest = channels.parse_resize(b'{"Width":80,"Height":24}\n{"Width":100,"Hei')
    assert sizes == [TerminalSize(80, 24)]
    assert rest == b'{"Width":100,"Hei'
    sizes, rest = channels.parse_resize(rest + b'ght":30}{"Width":-1,"Height":2}[1]')
    assert sizes == [TerminalSize(100, 30)]  # negative sizes and non-objects are skipped
    assert rest == b""


def test_status_payloads_match_the_kubelet() -> None:
    assert json.loads(channels.status_success()) == {"metadata": {}, "status": "Success"}
    failure = json.loads(channels.status_for_exit(3, "[sh -c exit 3]"))
    assert failure["status"] == "Failure"
    assert failure["reason"] == "NonZeroExitCode"
    assert failure["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}
    assert failure["message"].startswith("command terminated with non-zero exit code")
    internal = json.loads(channels.status_for_error("container gone"))
    assert (internal["reason"], internal["code"]) == ("InternalError", 500)
    assert internal["message"] == "Internal error occurred: container gone"


def test_decode_status_reads_exit_codes_and_errors() -> None:
    assert channels.decode_status(b"") == (0, "")
    assert channels.decode_status(channels.status_success()) == (0, "")
    assert channels.decode_status(channels.status_for_exit(42))[0] == 42
    assert channels.decode_status(channels.status_for_error("boom")) == (
        None,
        "Internal error occurred: boom",
    )
    assert channels.decode_status(b"plain v1 error") == (None, "plain v1 error")


def test_port_query_values() -> None:
    assert list(channels.iter_ports(["80", "8080,9090"])) == [80, 8080, 9090]
    with pytest.raises(ValueError, match="between 1 and 65535"):
        list(channels.iter_ports(["0"]))


# -- SPDY ---------------------------------------------------------------------------------


def test_the_dictionary_is_the_one_go_clients_use() -> None:
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2  # the DICTID in crictl's zlib header
    assert CRICTL_EXEC_SYN[18:24] == b"\x78\xf9\xe3\xc6\xa7\xc2"


def test_decodes_crictl_frames_split_anywhere() -> None:
    decoder = spdy.FrameDecoder()
    frames = [
        f for i in range(len(CRICTL_EXEC_SYN)) for f in decoder.feed(CRICTL_EXEC_SYN[i : i + 1])
    ]
    assert frames == [spdy.SynStream(1, {"streamtype": ["error"]})]
    frames = spdy.FrameDecoder().feed(CRICTL_PORTFORWARD_SYN)
    assert frames == [
        spdy.SynStream(1, {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]})
    ]


def test_frames_round_trip_with_a_shared_compression_context() -> None:
    encoder, decoder = spdy.FrameEncoder(), spdy.FrameDecoder()
    frames: list[spdy.Frame] = [
        spdy.SynStream(1, {"streamtype": ["stdin"]}),
        spdy.SynStream(3, {"streamtype": ["stdout"], "multi": ["a", "b"]}, fin=True),
        spdy.SynReply(1),
        spdy.SynReply(3, {"x": ["y"]}, fin=True),
        spdy.Data(1, b"payload"),
        spdy.Data(3, b"", fin=True),
        spdy.RstStream(5, spdy.CANCEL),
        spdy.Ping(7),
        spdy.GoAway(3, 0),
    ]
    wire = b"".join(encoder.encode(frame) for frame in frames)
    assert decoder.feed(wire) == frames


def test_settings_headers_and_window_updates_are_ignored() -> None:
    settings = b"\x80\x03\x00\x04\x00\x00\x00\x0c" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x07" * 2
    window = b"\x80\x03\x00\x09\x00\x00\x00\x08" + b"\x00\x00\x00\x01\x00\x01\x00\x00"
    assert spdy.FrameDecoder().feed(settings + window) == [spdy.Ignored(4), spdy.Ignored(9)]


def test_bad_input_is_a_protocol_error() -> None:
    with pytest.raises(spdy.ProtocolError, match="version 2"):
        spdy.FrameDecoder().feed(b"\x80\x02\x00\x01\x00\x00\x00\x0a" + b"\x00" * 10)
    with pytest.raises(spdy.ProtocolError, match="decompress"):
        spdy.FrameDecoder().feed(b"\x80\x03\x00\x02\x00\x00\x00\x08\x00\x00\x00\x01garb")
    with pytest.raises(ValueError, match="too large"):
        spdy.FrameEncoder().encode(spdy.Data(1, b"x" * (1 << 24)))
