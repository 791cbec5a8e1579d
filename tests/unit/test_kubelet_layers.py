"""pycri/kubelet's layers import one way only: cli -> sync -> model, nothing back.

The imports are read from the source with :mod:`ast` (not by importing, which
would hide an upward import behind the package's own ``__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

# found on disk, not imported: an upward import may well break the import itself
KUBELET = Path(__file__).resolve().parents[2] / "pycri" / "kubelet"
#: a layer may import the layers at its rank and below
RANK = {"model": 0, "sync": 1, "cli": 2}


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``path``, a module of ``package``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # the module names the layer; ``from pycri.kubelet import x`` is the front door
            found.append((node.lineno, module))
    return found


def layer_violations(root: Path) -> list[str]:
    """Every import in ``root``'s layers that goes up, or through the package itself."""
    problems = []
    for layer, rank in RANK.items():
        for path in sorted((root / layer).rglob("*.py")):
            package = ".".join(("pycri", "kubelet", *path.parent.relative_to(root).parts))
            for line, module in imported_modules(path, package):
                where = f"{path.relative_to(root)}:{line} imports {module}"
                if module == "pycri.kubelet":
                    problems.append(f"{where} (the package's front door pulls in every layer)")
                    continue
                if not module.startswith("pycri.kubelet."):
                    continue
                target = module.split(".")[2]
                if target not in RANK:
                    problems.append(f"{where} (a module outside the layers)")
                elif RANK[target] > rank:
                    problems.append(f"{where} (an upward import: {layer} -> {target})")
    return problems


def test_imports_run_cli_to_sync_to_model_only() -> None:
    assert layer_violations(KUBELET) == []


def test_every_module_is_in_a_layer() -> None:
    loose = {p.name for p in KUBELET.glob("*.py")} - {"__init__.py", "__main__.py"}
    strays = {p.name for p in KUBELET.iterdir() if p.is_dir() and p.name not in RANK}
    assert loose == set()
    assert strays - {"__pycache__"} == set()


@pytest.mark.parametrize(
    ("layer", "source", "complaint"),
    [
        ("model", "from pycri.kubelet.sync.kubelet import Kubelet\n", "model -> sync"),
        ("model", "from pycri.kubelet.cli import session\n", "model -> cli"),
        ("sync", "import pycri.kubelet.cli.tables\n", "sync -> cli"),
        ("sync", "from ..cli import tables\n", "sync -> cli"),
        ("sync", "from pycri.kubelet import Kubelet\n", "front door"),
        ("model", "from pycri.kubelet import paths\n", "front door"),
        ("sync", "from pycri.kubelet.timefmt import rfc3339\n", "outside the layers"),
    ],
)
def test_the_check_finds_an_upward_import(
    tmp_path: Path, layer: str, source: str, complaint: str
) -> None:
    for name in RANK:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / layer / "bad.py").write_text(source)
    (tmp_path / "cli" / "fine.py").write_text(
        "from pycri.kubelet.model import spec\nfrom ..sync.kubelet import Kubelet\n"
    )
    problems = layer_violations(tmp_path)
    assert len(problems) == 1, problems
    assert f"{layer}/bad.py:1" in problems[0]
    assert complaint in problems[0]
