"""Rules every shim shares; :class:`CRIRuntime` serves the CRI over a shim."""

from pycri.core.rpcs.base import rpc
from pycri.core.runtime import CRIRuntime

__all__ = ["CRIRuntime", "rpc"]
