"""Output as crictl prints it: protojson, crictl's status documents, YAML, tables, templates.

crictl marshals responses with protojson (lowerCamelCase names, int64 as
strings, enums by name, default values included, map keys sorted), and
its ``inspect*``/``info`` documents through Go maps (every key sorted,
``<>&`` escaped). The helpers here reproduce both, so ``-o json`` output
parses to the same data as crictl's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click
import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from pycri.cli.template import render_template

__all__ = [
    "FORMATS",
    "echo",
    "emit",
    "emit_message",
    "emit_status",
    "go_json",
    "proto_dict",
    "render_table",
    "status_dict",
    "status_document",
    "style",
]

FORMATS = ("json", "yaml", "table", "go-template")
_MIN_WIDTH, _PADDING = 20, 3  # crictl's tabwriter.NewWriter(os.Stdout, 20, 1, 3, ' ', 0)


def proto_dict(msg: Message) -> dict[str, Any]:
    """The message as Go's protojson (EmitDefaultValues) marshals it."""
    raw = json_format.MessageToDict(msg, always_print_fields_with_no_presence=True)
    return _ordered(msg.DESCRIPTOR, raw)


def _ordered(desc: Any, raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in desc.fields:
        if field.json_name in raw:
            out[field.json_name] = _value(field, raw[field.json_name])
    return out


def _value(field: FieldDescriptor, value: Any) -> Any:
    sub = field.message_type
    if sub is None:
        return value
    if sub.GetOptions().map_entry:
        inner = sub.fields_by_name["value"]
        return {key: _value(inner, value[key]) for key in sorted(value)}
    if field.is_repeated:
        return [_ordered(sub, item) for item in value]
    return _ordered(sub, value)


def status_dict(msg: Message, times: Mapping[str, str] | None = None) -> dict[str, Any]:
    """crictl's marshalContainerStatus/marshalPodSandboxStatus shape.

    Every field is present (unset messages as null) and the time fields
    given in ``times`` replace the nanosecond integers.
    """
    out = proto_dict(msg)
    for field in msg.DESCRIPTOR.fields:
        if field.containing_oneof is None:
            out.setdefault(field.json_name, None)
    out.update(times or {})
    return out


def status_document(
    status: Mapping[str, Any] | None,
    info: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One entry of crictl's outputStatusData: status, extras, then the parsed info map."""
    doc: dict[str, Any] = {}
    if status is not None:
        doc["status"] = dict(status)
    doc.update(extra or {})
    for key in sorted(info):
        value = info[key]
        if value.startswith("{"):
            try:
                doc[key] = json.loads(value, parse_float=_go_float)
            except ValueError:
                doc[key] = value
        else:
            doc[key] = value.strip('"')
    return doc


def _go_float(text: str) -> float | int:
    """Go decodes JSON numbers as float64 and prints integral ones without ``.0``."""
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 1e21 else value


def go_json(value: Any) -> str:
    """Go's json.Marshal of maps + json.Indent: keys sorted, ``<>&`` escaped."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class _GoYamlDumper(yaml.SafeDumper):
    """Quotes like go-yaml: double quotes where a plain scalar would not do."""

    def choose_scalar_style(self) -> str:
        style = str(super().choose_scalar_style())
        if style != "'":
            return style
        text = getattr(self.event, "value", "")
        return "'" if '"' in text and "'" not in text else '"'


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_GoYamlDumper.add_representer(str, _represent_str)


def to_yaml(value: Any) -> str:
    """sigs.k8s.io/yaml's JSONToYAML: block style, keys sorted."""
    return yaml.dump(
        value,
        Dumper=_GoYamlDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
    )


def emit(value: Any, fmt: str, template: str = "", *, go_maps: bool) -> None:
    """Print a JSON-shaped value as json, yaml or go-template."""
    if fmt == "json":
        echo(go_json(value) if go_maps else json.dumps(value, indent=2, ensure_ascii=False))
    elif fmt == "yaml":
        echo(to_yaml(value))
    elif fmt == "go-template":
        echo(render_template(template, value))
    else:
        raise click.UsageError(f"unsupported output format {fmt!r}")


def emit_message(msg: Message, fmt: str, template: str = "") -> None:
    """Print a whole response as crictl's outputProtobufObjAsJSON/YAML do."""
    emit(proto_dict(msg), fmt, template, go_maps=False)


def emit_status(docs: Sequence[Mapping[str, Any]], fmt: str, template: str = "") -> None:
    """crictl's outputStatusData: one document alone, several as a list."""
    if not docs:
        return
    emit(docs[0] if len(docs) == 1 else list(docs), fmt, template, go_maps=True)


def _colour_enabled() -> bool | None:
    return False if os.environ.get("NO_COLOR") else None


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """click.echo that drops colour codes unless writing to a terminal."""
    click.echo(text, err=err, nl=nl, color=_colour_enabled())


_STATE_COLOURS = {
    "Running": "green",
    "Ready": "green",
    "Created": "cyan",
    "Exited": "yellow",
    "NotReady": "yellow",
    "Unknown": "red",
}


def style(text: str) -> str:
    """Colour a state name (stripped again by :func:`echo` off a terminal)."""
    colour = _STATE_COLOURS.get(text)
    return click.style(text, fg=colour) if colour else text


def render_table(
    rows: Sequence[Sequence[str]], styles: Mapping[int, Callable[[str], str]] | None = None
) -> str:
    """Go tabwriter with crictl's settings; ``styles`` colours cells after padding."""
    if not rows:
        return ""
    widths: dict[int, int] = {}
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            widths[index] = max(widths.get(index, _MIN_WIDTH), len(cell) + _PADDING)
    lines = []
    for row in rows:
        parts = []
        for index, cell in enumerate(row):
            shown = styles[index](cell) if styles and index in styles else cell
            if index < len(row) - 1:
                shown += " " * (widths[index] - len(cell))
            parts.append(shown)
        lines.append("".join(parts))
    return "\n".join(lines)
