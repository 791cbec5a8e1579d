from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from pycri import registry
from pycri.registry import ShimLoadError, load_shim
from pycri_shims.fake import FakeShim


def test_load_fake_by_name() -> None:
    shim = load_shim("fake")
    try:
        assert isinstance(shim, FakeShim)
    finally:
        shim.close()


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ShimLoadError, match=r"unknown shim 'nope'; available shims: .*fake"):
        load_shim("nope")


def test_missing_dependency_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_dep_shim.py").write_text("import pycri_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = EntryPoint("broken", "needs_dep_shim:Shim", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"broken": broken})
    with pytest.raises(ShimLoadError, match=r"pip install pycri_absent_dependency"):
        load_shim("broken")
    sys.modules.pop("needs_dep_shim", None)


def test_entry_point_that_is_not_a_shim(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = EntryPoint("wrong", "os:getcwd", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"wrong": wrong})
    with pytest.raises(ShimLoadError, match=r"not a pycri\.shim\.Shim subclass"):
        load_shim("wrong")


def test_bad_options_are_reported() -> None:
    with pytest.raises(ShimLoadError, match="bad options for the 'fake' shim"):
        load_shim("fake", {"no_such_option": "1"})
