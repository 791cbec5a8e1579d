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


def shim_packages_on_disk() -> list[str]:
    """Every shim package shipped: each package directly under shims/."""
    return sorted(init.parent.name for init in (ROOT / "shims").glob("*/__init__.py"))


def test_our_shims_are_entry_points() -> None:
    """Every shim package on disk is registered, under its own name, and loads to a Shim
    subclass of that package (no daemon needed): a shim left out of the entry points fails."""
    from pycri.registry import available_shims, load_shim_class
    from pycri.shim import Shim

    on_disk = shim_packages_on_disk()
    assert {"docker", "fake", "nerdctl"} <= set(on_disk)  # the glob itself finds them
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert sorted(declared["pycri.shims"]) == on_disk
    for name in on_disk:
        assert declared["pycri.shims"][name].startswith(f"pycri_shims.{name}:")
        assert name in available_shims(), f"{name}: installed metadata is stale, pip install -e ."
        cls = load_shim_class(name)
        assert issubclass(cls, Shim)
        assert cls.__module__.startswith(f"pycri_shims.{name}.")
        assert cls.name == name
