"""What a pod may ask of the host: privileged mode and host namespaces.

Off unless the runtime is started with ``allow_privileged`` (pycri-server's
``--allow-privileged``), as the kubelet's ``--allow-privileged`` once was: a
CRI client that can run privileged containers owns the node.
"""

from __future__ import annotations

from pycri.api import api_pb2 as cri
from pycri.errors import PermissionDeniedError

__all__ = ["check_privileges"]


def check_privileges(
    context: cri.LinuxSandboxSecurityContext | cri.LinuxContainerSecurityContext,
    allow: bool,
    field: str = "config.linux.security_context",
) -> None:
    """PermissionDeniedError for privileged mode or a host namespace, unless allowed."""
    if allow:
        return
    hint = "start the server with --allow-privileged to allow it"
    if context.privileged:
        raise PermissionDeniedError(f"{field}.privileged is refused: {hint}")
    options = context.namespace_options
    host = [
        kind
        for kind, mode in (("network", options.network), ("pid", options.pid), ("ipc", options.ipc))
        if mode == cri.NODE
    ]
    if host:
        raise PermissionDeniedError(
            f"host {'/'.join(host)} namespace ({field}.namespace_options) is refused: {hint}"
        )
