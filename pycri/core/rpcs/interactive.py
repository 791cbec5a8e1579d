"""Exec, Attach, PortForward: checked here, then served by pycri's streaming server.

Each RPC answers a URL of :class:`pycri.streaming.server.StreamingServer`,
where the client then runs the session (UNIMPLEMENTED without a server).
"""

from __future__ import annotations

from pycri.api import api_pb2 as cri
from pycri.core.rpcs.base import RuntimeBase, rpc
from pycri.core.validation import validate_exec_cmd
from pycri.errors import FailedPreconditionError

__all__ = ["InteractiveRPCs"]


class InteractiveRPCs(RuntimeBase):
    """The interactive sessions: Exec, Attach, PortForward."""

    @rpc("Exec")
    def exec(self, request: cri.ExecRequest) -> cri.ExecResponse:
        from pycri.streaming.server import serving  # lazily: it loads websockets

        streaming = serving(self.streaming, self.shim, "Exec")
        container_id = self._resolve_container(request.container_id)
        validate_exec_cmd(list(request.cmd))
        self._require_running(container_id, "exec in")
        resolved = cri.ExecRequest()
        resolved.CopyFrom(request)
        resolved.container_id = container_id
        return cri.ExecResponse(url=streaming.get_exec(resolved))

    @rpc("Attach")
    def attach(self, request: cri.AttachRequest) -> cri.AttachResponse:
        from pycri.streaming.server import serving

        streaming = serving(self.streaming, self.shim, "Attach")
        container_id = self._resolve_container(request.container_id)
        self._require_running(container_id, "attach to")
        resolved = cri.AttachRequest()
        resolved.CopyFrom(request)
        resolved.container_id = container_id
        return cri.AttachResponse(url=streaming.get_attach(resolved))

    @rpc("PortForward")
    def port_forward(self, request: cri.PortForwardRequest) -> cri.PortForwardResponse:
        from pycri.streaming.server import serving

        streaming = serving(self.streaming, self.shim, "PortForward")
        pod_id = self._resolve_pod(request.pod_sandbox_id)
        status, _ = self.shim.pod_sandbox_status(pod_id, False)
        if status.state != cri.SANDBOX_READY:
            raise FailedPreconditionError(
                f"pod sandbox {pod_id[:13]} is not ready: cannot forward ports into it"
            )
        resolved = cri.PortForwardRequest(pod_sandbox_id=pod_id, port=request.port)
        return cri.PortForwardResponse(url=streaming.get_port_forward(resolved))
