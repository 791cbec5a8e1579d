"""A small subset of Go's text/template, for ``-o go-template --template``.

Supported: ``{{.}}``, ``{{.a.b}}``, the functions ``json``, ``upper``,
``lower`` and ``title`` (``{{json .a}}`` or ``{{.a | json}}``),
``{{range .list}}...{{end}}``, ``{{if .x}}...{{else}}...{{end}}`` and the
``{{-``/``-}}`` trim markers. Missing keys are errors, as in crictl
(``missingkey=error``). Anything else is rejected with a clear message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TemplateError", "render_template"]

_ACTION = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.DOTALL)
_PATH = re.compile(r"^\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$")


class TemplateError(ValueError):
    """The template cannot be parsed or executed."""


def _title(text: str) -> str:
    return re.sub(r"\b\w", lambda m: m.group(0).upper(), text)


_FUNCS: dict[str, Callable[[Any], str]] = {
    "json": lambda value: json.dumps(value, ensure_ascii=False) + "\n",
    "upper": lambda value: _show(value).upper(),
    "lower": lambda value: _show(value).lower(),
    "title": lambda value: _title(_show(value)),
}


@dataclass
class _Node:
    kind: str  # text, value, range, if
    arg: str = ""
    func: str = ""
    body: list[_Node] = field(default_factory=list)
    orelse: list[_Node] = field(default_factory=list)


def _show(value: Any) -> str:
    """How Go's fmt prints a value decoded from JSON."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = " ".join(f"{key}:{_show(value[key])}" for key in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(_show(item) for item in value) + "]"
    return str(value)


def _lookup(data: Any, path: str) -> Any:
    value = data
    for name in [part for part in path.split(".") if part]:
        if not isinstance(value, dict):
            raise TemplateError(f"can't evaluate field {name} in {_show(value)!r}")
        if name not in value:
            raise TemplateError(f"map has no entry for key {name!r}")
        value = value[name]
    return value


def _truthy(value: Any) -> bool:
    return bool(value) if value is not None else False


def _parse_action(text: str) -> _Node:
    if "|" in text:
        arg, _, func = (part.strip() for part in text.partition("|"))
        return _check(_Node("value", arg=arg, func=func))
    words = text.split()
    if len(words) == 2 and words[0] in _FUNCS:
        return _check(_Node("value", arg=words[1], func=words[0]))
    return _check(_Node("value", arg=text))


def _check(node: _Node) -> _Node:
    if not _PATH.match(node.arg):
        raise TemplateError(f"unsupported template expression {node.arg!r} (see pycrictl docs)")
    if node.func and node.func not in _FUNCS:
        raise TemplateError(f"function {node.func!r} not defined")
    return node


def _parse(template: str) -> list[_Node]:
    root: list[_Node] = []
    stack: list[tuple[_Node, list[_Node]]] = []
    current = root
    pos, trim_next = 0, False
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        if text:
            current.append(_Node("text", arg=text))
        pos, trim_next = match.end(), bool(match.group(3))
        action = match.group(2)
        keyword, _, rest = action.partition(" ")
        if keyword in ("range", "if"):
            node = _check(_Node(keyword, arg=rest.strip()))
            current.append(node)
            stack.append((node, current))
            current = node.body
        elif keyword == "else" and stack and stack[-1][0].kind == "if":
            current = stack[-1][0].orelse
        elif keyword == "end" and stack:
            current = stack.pop()[1]
        else:
            current.append(_parse_action(action))
    if stack:
        raise TemplateError(f"unexpected EOF: {{{{{stack[-1][0].kind}}}}} has no {{{{end}}}}")
    tail = template[pos:]
    if trim_next:
        tail = tail.lstrip()
    if tail:
        current.append(_Node("text", arg=tail))
    return root


def _run(nodes: list[_Node], data: Any, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.arg)
        elif node.kind == "value":
            value = _lookup(data, node.arg)
            out.append(_FUNCS[node.func](value) if node.func else _show(value))
        elif node.kind == "range":
            items = _lookup(data, node.arg)
            seq = [items[k] for k in sorted(items)] if isinstance(items, dict) else items or []
            for item in seq:
                _run(node.body, item, out)
        elif node.kind == "if":
            _run(node.body if _truthy(_lookup(data, node.arg)) else node.orelse, data, out)


def render_template(template: str, data: Any) -> str:
    """Execute ``template`` over JSON-shaped ``data``."""
    if not template:
        raise TemplateError("--template is required with -o go-template")
    out: list[str] = []
    _run(_parse(template), data, out)
    return "".join(out)
