from __future__ import annotations

import pytest

from pycri.endpoint import Endpoint, parse_endpoint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unix:///run/x.sock", Endpoint("unix", path="/run/x.sock")),
        ("unix:/run/x.sock", Endpoint("unix", path="/run/x.sock")),
        ("/run/x.sock", Endpoint("unix", path="/run/x.sock")),
        ("tcp://127.0.0.1:1234", Endpoint("tcp", host="127.0.0.1", port=1234)),
        ("tcp://:1234", Endpoint("tcp", host="127.0.0.1", port=1234)),
        ("tcp://[::1]:80", Endpoint("tcp", host="::1", port=80)),
    ],
)
def test_parse(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize(
    "bad", ["", "unix://relative.sock", "tcp://127.0.0.1", "http://x:1", "tcp://h:99999"]
)
def test_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        parse_endpoint(bad)


def test_loopback() -> None:
    assert parse_endpoint("tcp://127.0.0.1:1").is_loopback
    assert parse_endpoint("tcp://[::1]:1").is_loopback
    assert parse_endpoint("tcp://localhost:1").is_loopback
    assert not parse_endpoint("tcp://0.0.0.0:1").is_loopback
    assert str(parse_endpoint("tcp://[::1]:5")) == "tcp://[::1]:5"
