"""setuptools lists packages explicitly (shims/ installs as pycri_shims): keep the list whole."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_on_disk_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = set()
    for top, directory in config["package-dir"].items():
        base = ROOT / directory
        for init in base.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            on_disk.add(".".join((top, *parts)))
    assert on_disk == listed


def test_our_shims_are_entry_points() -> None:
    """Every shim shipped is registered, under its own name, and loads (no daemon needed)."""
    from pycri.registry import available_shims, load_shim_class
    from pycri_shims.docker import DockerShim
    from pycri_shims.fake import FakeShim
    from pycri_shims.nerdctl import NerdctlShim

    shipped = {"docker": DockerShim, "fake": FakeShim, "nerdctl": NerdctlShim}
    assert set(shipped) <= set(available_shims())
    for name, cls in shipped.items():
        assert load_shim_class(name) is cls
        assert cls.name == name
