"""Rules every shim shares; :class:`CRIRuntime` serves the CRI over a shim."""

from pycri.core.runtime import CRIRuntime, rpc

__all__ = ["CRIRuntime", "rpc"]
