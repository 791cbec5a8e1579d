"""The repository's words point at things that exist, inside the repository.

Files move (issue 17 moved many): a docstring or a page naming a path that
is gone sends a reader nowhere, and a design that lives outside a clone is
not the design of record (docs/design.md is).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: where a path written relative to something other than the file itself starts
BASES = ("", "pycri", "shims", "tests", "tests/integration", "benchmarks", "scripts")

#: a relative path with at least one directory, ending in a kind of file we keep
PATH = re.compile(
    r"(?<![\w/.$-])((?:\.\./)*[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]*\.(?:py|sh|md|toml|expected))\b"
)
#: a Markdown link's target
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")

#: how a reference outside the repository would read (split so this file is not one)
OUTSIDE = ("../" + "shared", "DESIGN" + ".md")


def tracked(*suffixes: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if name.endswith(suffixes) and (ROOT / name).is_file()]


def _texts() -> list[Path]:
    return [
        p
        for p in tracked(".py", ".md", ".sh", ".toml", ".yaml")
        if "pycri/api/api_pb2" not in p.as_posix()
    ]


def test_the_design_of_record_is_in_the_repository() -> None:
    assert (ROOT / "docs" / "design.md").is_file()
    pointing_out = [
        f"{p.relative_to(ROOT)}: {word}"
        for p in _texts()
        for word in OUTSIDE
        if word in p.read_text(errors="replace")
    ]
    assert pointing_out == []


def _resolves(path: str, beside: Path) -> bool:
    return (beside.parent / path).exists() or any((ROOT / base / path).exists() for base in BASES)


def test_paths_named_in_docs_and_docstrings_exist() -> None:
    missing = []
    for file in _texts():
        for match in PATH.finditer(file.read_text(errors="replace")):
            path = match.group(1)
            if "<" not in path and not _resolves(path, file):
                missing.append(f"{file.relative_to(ROOT)}: {path}")
    assert missing == []


def test_markdown_links_resolve() -> None:
    broken = []
    for page in tracked(".md"):
        for match in LINK.finditer(page.read_text()):
            target = match.group(1)
            if re.match(r"[a-z]+:", target):  # a URL
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("see `shims/nerdctl/view.py` for", ["shims/nerdctl/view.py"]),
        ("(core/logcopy.py)", ["core/logcopy.py"]),
        ("$CONF_DIR/containerd.toml and https://x.io/docs/a.md", []),
        ("plain words.py and names", []),
    ],
)
def test_the_path_pattern(text: str, found: list[str]) -> None:
    assert PATH.findall(text) == found
