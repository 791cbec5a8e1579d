"""pycrictl's formatting helpers: units, tables, protojson, status documents, templates."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import click
import pytest

from pycri.api import api_pb2 as cri
from pycri.cli.output import (
    go_json,
    proto_dict,
    render_table,
    status_dict,
    status_document,
    to_yaml,
)
from pycri.cli.template import TemplateError, render_template
from pycri.cli.units import (
    ago,
    go_time,
    go_units_human_duration,
    human_size,
    parse_duration,
    parse_labels,
    parse_since,
    truncate_id,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2s", 2.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("0", 0.0), ("20", 20.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "2x", "s", "1m x"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (42, "42 seconds"),
        (61, "About a minute"),
        (600, "10 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (21 * 86400, "3 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration_matches_go_units(seconds: float, text: str) -> None:
    assert go_units_human_duration(seconds) == text


def test_ago_counts_from_now() -> None:
    assert ago(1_000_000_000, now_ns=43_000_000_000) == "42 seconds ago"


@pytest.mark.parametrize(
    ("size", "text"), [(2141544, "2.14MB"), (687402, "687kB"), (999, "999B"), (0, "0B")]
)
def test_human_size_three_digits(size: int, text: str) -> None:
    assert human_size(size, 3) == text


def test_truncate_id() -> None:
    assert truncate_id("sha256:" + "ab" * 32, "sha256:") == "abababababababa"[:13]
    assert truncate_id("short") == "short"


def test_parse_labels() -> None:
    assert parse_labels(["a=1", "b="]) == {"a": "1", "b": ""}
    with pytest.raises(ValueError, match="incorrectly specified label"):
        parse_labels(["a=b=c"])


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def test_go_time_formats_like_rfc3339nano(zone: Callable[[str], None]) -> None:
    zone("UTC")
    assert go_time(1_795_782_671_748_414_029) == "2026-11-27T12:31:11.748414029Z"
    assert go_time(1_500_000_000_000_000_000) == "2017-07-14T02:40:00Z"
    assert go_time(5, zero=True) == "0001-01-01T00:00:00Z"
    zone("XYZ-2")  # a POSIX zone two hours east of UTC
    assert go_time(1_500_000_000_000_000_000) == "2017-07-14T04:40:00+02:00"


def test_parse_since_duration_and_times() -> None:
    assert parse_since("10s", now=100.0) == 90_000_000_000
    assert parse_since("2013-01-02T13:23:37Z") == 1_357_133_017_000_000_000
    assert parse_since("1357133017.5") == 1_357_133_017_500_000_000
    with pytest.raises(ValueError, match="invalid --since"):
        parse_since("yesterday")


def test_table_is_go_tabwriter_with_crictl_settings() -> None:
    rows = [["POD ID", "NAME", "RUNTIME"], ["abc", "a-very-long-pod-name-here", "(default)"]]
    lines = render_table(rows).splitlines()
    # columns are max(20, widest cell + 3) wide; the last column is not padded
    assert lines[0] == "POD ID" + " " * 14 + "NAME" + " " * 24 + "RUNTIME"
    assert lines[1] == "abc" + " " * 17 + "a-very-long-pod-name-here" + " " * 3 + "(default)"


def test_table_styles_do_not_change_alignment() -> None:
    rows = [["A", "STATE", "Z"], ["x", "Running", "z"]]
    plain = render_table(rows)
    styled = render_table(rows, {1: lambda text: f"<{text}>"})
    assert styled.replace("<", "").replace(">", "") == plain


def test_proto_dict_is_protojson() -> None:
    pod = cri.PodSandbox(
        id="p1",
        metadata=cri.PodSandboxMetadata(name="web", namespace="ns"),
        created_at=12,
        labels={"b": "2", "a": "1"},
    )
    data = proto_dict(pod)
    assert list(data) == [
        "id",
        "metadata",
        "state",
        "createdAt",
        "labels",
        "annotations",
        "runtimeHandler",
    ]
    assert data["createdAt"] == "12"  # int64 as a string
    assert data["state"] == "SANDBOX_READY"  # enums by name
    assert list(data["labels"]) == ["a", "b"]  # map keys sorted
    assert data["metadata"] == {"name": "web", "uid": "", "namespace": "ns", "attempt": 0}


def test_status_dict_has_nulls_and_times() -> None:
    status = cri.ContainerStatus(id="c1", state=cri.CONTAINER_RUNNING)
    data = status_dict(status, {"createdAt": "T"})
    assert data["user"] is None
    assert data["image"] is None
    assert data["createdAt"] == "T"
    assert data["exitCode"] == 0


def test_status_document_parses_json_info() -> None:
    doc = status_document({"id": "x"}, {"info": '{"pid": 1.0, "a": [1]}', "plain": '"quoted"'})
    assert doc == {"status": {"id": "x"}, "info": {"pid": 1, "a": [1]}, "plain": "quoted"}


def test_go_json_sorts_and_escapes_html() -> None:
    text = go_json({"b": "<&>", "a": 1})
    assert text == '{\n  "a": 1,\n  "b": "\\u003c\\u0026\\u003e"\n}'
    assert json.loads(text)["b"] == "<&>"


def test_yaml_quotes_like_go_yaml() -> None:
    assert to_yaml({"n": "123", "e": "", "s": "x"}) == 'e: ""\nn: "123"\ns: x\n'


def test_template_fields_functions_range_if() -> None:
    data = {
        "status": {"id": "abc", "labels": {"a": "1"}, "ok": True},
        "items": [{"n": 1}, {"n": 2}],
    }
    assert render_template("{{.status.id}}", data) == "abc"
    assert render_template("{{upper .status.id}}|{{.status.id | title}}", data) == "ABC|Abc"
    assert render_template("{{range .items}}{{.n}},{{end}}", data) == "1,2,"
    assert render_template("{{if .status.ok}}yes{{else}}no{{end}}", data) == "yes"
    assert render_template("{{.status.labels}}", data) == "map[a:1]"
    assert render_template("{{json .status.labels}}", data) == '{"a": "1"}\n'
    assert render_template("a  {{- .status.id -}}  b", data) == "aabcb"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.missing}}", "no entry for key"),
        ("{{range .items}}", "has no"),
        ("{{printf .x}}", "unsupported"),
        ("{{.a | nope}}", "not defined"),
        ("", "required"),
    ],
)
def test_template_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render_template(template, {"items": [], "a": 1})


def _image(image_id: str, tags: list[str], digests: list[str] | None = None) -> cri.Image:
    return cri.Image(id=image_id, repo_tags=tags, repo_digests=digests or [])


def test_image_filters_and_columns() -> None:
    from pycri.cli.imagelist import apply_filters, repo_digest, repo_tags

    a = _image("sha256:aaa", ["docker.io/library/a:1"], ["docker.io/library/a@sha256:111"])
    b = _image("sha256:bbb", [], ["docker.io/library/b@sha256:222"])
    c = _image("sha256:ccc", ["docker.io/library/c:2"])
    images = [a, b, c]
    assert apply_filters(images, ("dangling=true",)) == [b]
    assert apply_filters(images, ("dangling=false",)) == [a, c]
    assert apply_filters(images, ("reference=library/b",)) == [b]
    assert apply_filters(images, ("since=docker.io/library/c:2",)) == [a, b]
    assert apply_filters(images, ("before=docker.io/library/a:1",)) == [b, c]
    with pytest.raises(click.BadParameter, match="unknown filter"):
        apply_filters(images, ("size=1",))
    assert repo_digest(b) == ("docker.io/library/b", "sha256:222")
    assert repo_tags(b, "docker.io/library/b") == [("docker.io/library/b", "<none>")]
    assert repo_tags(a, "x") == [("docker.io/library/a", "1")]
