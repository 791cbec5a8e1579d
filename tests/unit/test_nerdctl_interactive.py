"""nerdctl exec's stderr: the process's part goes on, nerdctl's closing line is taken out."""

from __future__ import annotations

import time

import pytest

from pycri.testing import CollectedOutput
from pycri_shims.nerdctl.interactive import ExecStderr, holdback

LINE = b'time="2024-05-01T10:00:00Z" level=fatal msg="exec failed with exit code 3"\n'
ERROR = b'time="2024-05-01T10:00:00Z" level=fatal msg="cannot exec in a stopped state: unknown"\n'


class Gone:
    def write(self, data: bytes) -> None:
        raise BrokenPipeError("the client left")

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("buffer", "start", "complete"),
    [
        (b"", 0, False),
        (b"output\n", 7, False),
        (LINE, 0, True),
        (b"err\n" + LINE, 4, True),
        (b"partial" + LINE, 7, True),  # the process wrote no newline before it
        (LINE + b"more\n", len(LINE) + 5, False),
        (b'time="x" level=info msg="fine"\n', 31, False),
        (b'time="x" level=fatal msg=bare\n', 0, True),
        (b'time="x" level=fatal msg="quoted \\" quote"\n', 0, True),
        # what may still become the line (a read cut it)
        (LINE[:-1], 0, False),
        (b"out\n" + LINE[:30], 4, False),
        (b"wait", 3, False),
        (b"waiting for time", 12, False),
        (b"x time=", 2, False),
        (b'x time="2024', 2, False),
        (b'x time="2024" level=info', 24, False),
        (b'x time="2024" level=fatal msg="exec \\', 2, False),
        (b'x time="2024" level=fatal msg="done" extra', 42, False),
        (b"nothing like this", 17, False),
    ],
)
def test_holdback(buffer: bytes, start: int, complete: bool) -> None:
    assert holdback(buffer) == (start, complete)


def feed(stderr: ExecStderr, *chunks: bytes) -> None:
    for chunk in chunks:
        stderr.write(chunk)


def test_nerdctl_s_line_is_taken_out_when_nerdctl_failed() -> None:
    sink = CollectedOutput()
    stderr = ExecStderr(sink)
    feed(stderr, b"err\n", LINE)
    assert sink.data == b"err\n"  # passed on at once; the line is held
    assert stderr.finish(1) == "exec failed with exit code 3"
    assert sink.data == b"err\n"


def test_a_look_alike_followed_by_more_is_output() -> None:
    sink = CollectedOutput()
    stderr = ExecStderr(sink)
    feed(stderr, LINE, b"more\n", LINE)
    assert sink.data == LINE + b"more\n"
    assert stderr.finish(1) == "exec failed with exit code 3"
    assert sink.data == LINE + b"more\n"


def test_a_look_alike_at_the_end_is_output_when_nerdctl_succeeded() -> None:
    sink = CollectedOutput()
    stderr = ExecStderr(sink)
    feed(stderr, b"x", LINE)
    assert stderr.finish(0) is None
    assert sink.data == b"x" + LINE


def test_a_line_split_over_reads_is_still_found() -> None:
    sink = CollectedOutput()
    stderr = ExecStderr(sink)
    feed(stderr, b"partial", LINE[:1], LINE[1:20])
    assert sink.data == b"partial"
    feed(stderr, LINE[20:])
    assert stderr.finish(1) == "exec failed with exit code 3"
    assert sink.data == b"partial"


def test_what_only_looks_like_a_start_is_released_soon() -> None:
    sink = CollectedOutput()
    stderr = ExecStderr(sink)
    feed(stderr, b"please wait")  # ends like the start of time="
    assert sink.data == b"please wai"
    deadline = time.monotonic() + 2
    while sink.data != b"please wait" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.data == b"please wait"
    assert stderr.finish(0) is None
    assert sink.data == b"please wait"


def test_the_exit_code_survives_a_late_release() -> None:
    # a cut line released before its rest came: output, but still parsed
    sink = CollectedOutput()
    stderr = ExecStderr(sink)
    feed(stderr, LINE[:10])
    time.sleep(0.5)
    feed(stderr, LINE[10:])
    assert stderr.finish(1) == "exec failed with exit code 3"


def test_other_messages_and_no_sink() -> None:
    stderr = ExecStderr(None)
    feed(stderr, b"warning\n", ERROR)
    assert stderr.finish(1) == "cannot exec in a stopped state: unknown"
    assert "warning" in stderr.tail


def test_a_client_that_left_does_not_stop_the_parsing() -> None:
    stderr = ExecStderr(Gone())
    feed(stderr, b"err\n", LINE)
    assert stderr.finish(1) == "exec failed with exit code 3"
