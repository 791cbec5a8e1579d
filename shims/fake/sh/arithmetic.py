"""``$((...))``: integer arithmetic with C's operators, evaluated on Python's syntax tree.

The expression is rewritten into Python (``&&`` -> ``and``, ``/`` -> ``//``,
names -> their values), parsed with :mod:`ast`, and only integer operations
are evaluated: nothing of Python beyond the operators runs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping

from pycri_shims.fake.sh.control import ExpansionError
from pycri_shims.fake.sh.lexer import NAME

__all__ = ["evaluate"]


def evaluate(expanded: str, variables: Mapping[str, str], written: str) -> int:
    """The value of an expression after parameter expansion; names read ``variables``.

    ``written`` is the expression as the script wrote it, for the error message.
    """

    def value(match: re.Match[str]) -> str:
        raw = variables.get(match.group(), "0").strip() or "0"
        return raw if re.fullmatch(r"-?[0-9]+", raw) else "0"

    text = NAME.sub(value, expanded).replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text).replace("/", "//")
    try:
        tree = ast.parse(text.strip() or "0", mode="eval")
    except SyntaxError:
        raise ExpansionError(f"arithmetic syntax error: {written.strip()}", 2) from None
    return _evaluate(tree.body)


def _evaluate(node: ast.expr) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return int(node.value)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        if isinstance(node.op, ast.Not):
            return int(not value)
        if isinstance(node.op, ast.Invert):
            return ~value
    if isinstance(node, ast.BinOp):
        a, b = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod):
            if b == 0:
                raise ExpansionError("arithmetic: division by zero", 2)
            quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # C truncation
            return quotient if not isinstance(node.op, ast.Mod) else a - b * quotient
        if isinstance(node.op, ast.BitAnd):
            return a & b
        if isinstance(node.op, ast.BitOr):
            return a | b
        if isinstance(node.op, ast.BitXor):
            return a ^ b
        if isinstance(node.op, ast.LShift):
            return a << b
        if isinstance(node.op, ast.RShift):
            return a >> b
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        a, b = _evaluate(node.left), _evaluate(node.comparators[0])
        compare: dict[type[ast.cmpop], Callable[[int, int], bool]] = {
            ast.Lt: lambda x, y: x < y,
            ast.LtE: lambda x, y: x <= y,
            ast.Gt: lambda x, y: x > y,
            ast.GtE: lambda x, y: x >= y,
            ast.Eq: lambda x, y: x == y,
            ast.NotEq: lambda x, y: x != y,
        }
        fn = compare.get(type(node.ops[0]))
        if fn is not None:
            return int(fn(a, b))
    if isinstance(node, ast.BoolOp):
        values = [_evaluate(v) for v in node.values]
        return int(all(values) if isinstance(node.op, ast.And) else any(values))
    raise ExpansionError("arithmetic syntax error", 2)
