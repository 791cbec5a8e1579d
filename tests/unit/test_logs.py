from __future__ import annotations

from pathlib import Path

import pytest

from pycri.core.logs import CRILogWriter, format_timestamp, parse_log_line, parse_timestamp


def read(path: Path) -> list[tuple[str, bool, bytes]]:
    return [
        (line.stream, line.partial, line.message)
        for line in map(parse_log_line, path.read_bytes().splitlines())
    ]


def test_timestamp_format_matches_go_rfc3339nano() -> None:
    assert format_timestamp(0) == "1970-01-01T00:00:00Z"
    assert format_timestamp(1_500_000_000) == "1970-01-01T00:00:01.5Z"
    assert format_timestamp(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"


@pytest.mark.parametrize(
    "text",
    ["2023-11-14T22:13:20.123456789Z", "2023-11-14T23:13:20.123456789+01:00"],
)
def test_timestamp_parse(text: str) -> None:
    assert parse_timestamp(text) == 1_700_000_000_123_456_789


def test_lines_split_on_newlines_and_partial_kept(tmp_path: Path) -> None:
    writer = CRILogWriter(tmp_path / "c.log")
    writer.write("stdout", b"one\ntw")
    writer.write("stderr", b"err\n")
    writer.write("stdout", b"o\n")
    writer.write("stdout", b"tail")
    writer.close()
    assert read(tmp_path / "c.log") == [
        ("stdout", False, b"one"),
        ("stderr", False, b"err"),
        ("stdout", False, b"two"),
        ("stdout", True, b"tail"),
    ]


def test_long_lines_are_cut_into_partial_pieces(tmp_path: Path) -> None:
    writer = CRILogWriter(tmp_path / "c.log", max_line=4)
    writer.write("stdout", b"abcdefghij\n")
    writer.write_line("stderr", b"12345")
    writer.close()
    assert read(tmp_path / "c.log") == [
        ("stdout", True, b"abcd"),
        ("stdout", True, b"efgh"),
        ("stdout", False, b"ij"),
        ("stderr", True, b"1234"),
        ("stderr", False, b"5"),
    ]


def test_reopen_starts_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    writer = CRILogWriter(path)
    writer.write("stdout", b"before\n")
    path.rename(tmp_path / "c.log.1")
    writer.reopen()
    writer.write("stdout", b"after\n")
    writer.close()
    assert read(tmp_path / "c.log.1") == [("stdout", False, b"before")]
    assert read(path) == [("stdout", False, b"after")]


def test_empty_line_and_garbage(tmp_path: Path) -> None:
    writer = CRILogWriter(tmp_path / "c.log")
    writer.write("stdout", b"\n")
    writer.close()
    assert read(tmp_path / "c.log") == [("stdout", False, b"")]
    with pytest.raises(ValueError, match="not a CRI log line"):
        parse_log_line(b"garbage")
