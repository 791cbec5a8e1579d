"""Decorators and helpers the command modules share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message

from pycri.cli.errors import CLIError, describe_rpc_error
from pycri.cli.output import echo
from pycri.cli.session import CrictlSession
from pycri.cli.units import parse_labels
from pycri.errors import CRIError

__all__ = [
    "compile_regex",
    "echo_map",
    "go_map",
    "label_option",
    "labels_from",
    "load_spec",
    "output_option",
    "pass_session",
    "run_each",
    "take",
    "template_option",
]

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=Message)
T = TypeVar("T")

pass_session = click.make_pass_decorator(CrictlSession)


def output_option(choices: Iterable[str], default: str | None = None) -> Callable[[F], F]:
    """``-o/--output`` limited to the formats crictl accepts for the command."""
    names = list(choices)
    return click.option(
        "-o",
        "--output",
        type=click.Choice(names),
        default=default,
        help=f"Output format, one of: {'|'.join(names)}.",
    )


def template_option(func: F) -> F:
    return click.option(
        "--template",
        default="",
        help="Template for -o go-template: a subset of Go templates ({{.field}}, range, if).",
    )(func)


def label_option(func: F) -> F:
    return click.option(
        "--label", "labels", multiple=True, metavar="KEY=VALUE", help="Filter by key=value label."
    )(func)


def labels_from(pairs: Iterable[str]) -> dict[str, str]:
    try:
        return parse_labels(pairs)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--label") from None


def load_spec(path: str, message: type[M], what: str) -> M:
    """Read a JSON or YAML file (crictl's pod/container configs) into ``message``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise CLIError(f"load {what}: config at {path} not found") from None
    except (OSError, yaml.YAMLError) as err:
        raise CLIError(f"load {what}: cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise CLIError(f"load {what}: {path} must hold a JSON or YAML object")
    try:
        return json_format.ParseDict(data, message())
    except json_format.ParseError as err:
        raise CLIError(f"load {what}: {path}: {err}") from None


def compile_regex(pattern: str | None, hint: str) -> re.Pattern[str] | None:
    """crictl's --name/--namespace regular expressions (unanchored, like Go's MatchString)."""
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as err:
        raise click.BadParameter(
            f"invalid regular expression {pattern!r}: {err}", param_hint=hint
        ) from None


def take(items: Sequence[T], latest: bool, last: int) -> list[T]:
    """--latest / --last N of items already sorted newest first."""
    count = len(items)
    if latest:
        count = 1
    if last > 0:
        count = last
    return list(items[: min(count, len(items))])


def run_each(ids: Iterable[str], action: Callable[[str], None]) -> None:
    """Apply ``action`` to every id; report every failure, then fail with the last."""
    last: Exception | None = None
    for item in ids:
        try:
            action(item)
        except (CRIError, CLIError) as err:
            if last is not None:
                _report(last)
            last = err
    if last is not None:
        raise last


def _report(err: Exception) -> None:
    text = describe_rpc_error(err) if isinstance(err, CRIError) else str(err)
    click.echo(f"pycrictl: {text}", err=True)


def go_map(values: Mapping[str, str]) -> str:
    """Go's %v of a map[string]string: ``map[a:1 b:2]``."""
    return "map[" + " ".join(f"{key}:{values[key]}" for key in sorted(values)) + "]"


def echo_map(title: str, values: Mapping[str, str]) -> None:
    """crictl's ``Labels:`` block: one tab-indented ``key -> value`` per line, sorted."""
    if values:
        echo(f"{title}:")
        for key in sorted(values):
            echo(f"\t{key} -> {values[key]}")
