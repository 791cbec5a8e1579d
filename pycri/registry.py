"""Shim discovery: every shim, ours included, is an entry point in ``pycri.shims``.

A third party adds a runtime by publishing a distribution with

    [project.entry-points."pycri.shims"]
    myruntime = "mypackage.shim:MyShim"

and ``pycri-server --shim myruntime`` finds it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points

from pycri.shim import Shim

__all__ = ["ENTRY_POINT_GROUP", "ShimLoadError", "available_shims", "load_shim"]

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "pycri.shims"


class ShimLoadError(Exception):
    """A shim could not be found or loaded; the message says what to do."""


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_shims() -> list[str]:
    return sorted(_entry_points())


def load_shim_class(name: str) -> type[Shim]:
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none (is pycri installed?)"
        raise ShimLoadError(f"unknown shim {name!r}; available shims: {known}")
    try:
        cls = ep.load()
    except ModuleNotFoundError as err:
        missing = err.name or str(err)
        raise ShimLoadError(
            f"the {name!r} shim needs the Python package {missing!r}, which is not installed: "
            f"pip install {missing}  (entry point {ep.value})"
        ) from err
    except Exception as err:
        raise ShimLoadError(f"the {name!r} shim ({ep.value}) failed to load: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Shim)):
        raise ShimLoadError(f"entry point {name!r} ({ep.value}) is not a pycri.shim.Shim subclass")
    return cls


def load_shim(name: str, options: Mapping[str, str] | None = None) -> Shim:
    """Instantiate the shim registered as ``name`` with string ``options``."""
    cls = load_shim_class(name)
    try:
        return cls.from_options(dict(options or {}))
    except (TypeError, ValueError) as err:
        raise ShimLoadError(f"bad options for the {name!r} shim: {err}") from err
