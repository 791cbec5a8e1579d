"""pycrictl orders images as crictl does: Go's sort.Sort, whose result matters when Less
is not a strict weak order (tests/unit/data/go_sort_cases.json: inputs and what
Go 1.26's sort.Sort made of them, with crictl's image Less)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pycri.cli.gosort import go_sort

CASES = json.loads((Path(__file__).parent / "data" / "go_sort_cases.json").read_text())


def crictl_less(a: dict[str, str], b: dict[str, str]) -> bool:
    if a["tag"] and b["tag"]:
        return a["tag"] < b["tag"]
    if a["digest"] and b["digest"]:
        return a["digest"] < b["digest"]
    return a["id"] < b["id"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{len(c[0])}")
def test_the_order_is_gos(case: list[list[dict[str, Any]]]) -> None:
    given, expected = case
    go_sort(given, crictl_less)
    assert given == expected
