"""The repository's shape, as docs/design.md section 3 states it.

Small modules, and one shape for every shim: a reader who knows where a
CRI call lives in one shim finds it under the same module name in the others.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 500

#: the modules every shim has, one per CRI resource (docs/design.md's table)
SHARED = (
    "shim.py",
    "sandboxes.py",
    "containers.py",
    "execsync.py",
    "interactive.py",
    "images.py",
    "image_volumes.py",
    "stats.py",
    "metrics.py",
)

SHIMS = sorted(p.parent.name for p in (ROOT / "shims").glob("*/__init__.py"))


def _hand_written() -> list[Path]:
    modules = [*(ROOT / "pycri").rglob("*.py"), *(ROOT / "shims").rglob("*.py")]
    return [m for m in modules if not m.name.endswith(("_pb2.py", "_pb2_grpc.py"))]


def test_no_module_is_over_the_limit() -> None:
    lines = {m: len(m.read_text().splitlines()) for m in _hand_written()}
    over = sorted(f"{m.relative_to(ROOT)}: {n}" for m, n in lines.items() if n > LIMIT)
    assert over == []


def test_the_three_shims_are_found() -> None:
    assert SHIMS == ["docker", "fake", "nerdctl"]


@pytest.mark.parametrize("shim", SHIMS)
def test_every_shim_has_the_shared_modules(shim: str) -> None:
    missing = [name for name in SHARED if not (ROOT / "shims" / shim / name).is_file()]
    assert missing == []


@pytest.mark.parametrize("shim", SHIMS)
def test_shims_import_absolutely(shim: str) -> None:
    relative = []
    for module in (ROOT / "shims" / shim).rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                relative.append(f"{module.relative_to(ROOT)}:{node.lineno}")
    assert relative == []


@pytest.mark.parametrize("shim", SHIMS)
def test_the_facade_stays_thin(shim: str) -> None:
    # the facade wires and delegates; the work is in the resource modules
    assert len((ROOT / "shims" / shim / "shim.py").read_text().splitlines()) <= 400
