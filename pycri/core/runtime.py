"""CRIRuntime: every CRI RPC, with the rules all shims share, over one Shim.

Each public method takes the RPC's request message and returns its response
message, so the gRPC servicer is a table lookup and Python code can drive a
runtime in process with exactly the same semantics as over the wire.

The RPCs live in :mod:`pycri.core.rpcs`, one module per CRI resource
(``sandboxes``, ``containers``, ``execsync``, ``interactive``, ``stats``,
``metrics``, ``images``, ``events``, ``runtime_status``); this class puts
them together.
"""

from __future__ import annotations

from pycri.core.rpcs.containers import ContainerRPCs
from pycri.core.rpcs.events import EventRPCs
from pycri.core.rpcs.execsync import ExecSyncRPCs
from pycri.core.rpcs.images import ImageRPCs
from pycri.core.rpcs.interactive import InteractiveRPCs
from pycri.core.rpcs.metrics import MetricsRPCs
from pycri.core.rpcs.runtime_status import RuntimeStatusRPCs
from pycri.core.rpcs.sandboxes import SandboxRPCs
from pycri.core.rpcs.stats import StatsRPCs

__all__ = ["CRIRuntime"]


class CRIRuntime(
    RuntimeStatusRPCs,
    SandboxRPCs,
    ContainerRPCs,
    ExecSyncRPCs,
    InteractiveRPCs,
    StatsRPCs,
    MetricsRPCs,
    ImageRPCs,
    EventRPCs,
):
    """The CRI served by one shim. Thread safe as far as the shim is.

    ``CRIRuntime(shim, allow_privileged=False, streaming=None)``:
    ``allow_privileged`` lets pods run privileged or in host namespaces
    (refused with PERMISSION_DENIED otherwise). ``streaming`` serves the
    URLs that Exec, Attach and PortForward return (UNIMPLEMENTED without it).
    """
