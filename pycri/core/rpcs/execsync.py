"""ExecSync: run a command in a running container and answer its output."""

from __future__ import annotations

from pycri.api import api_pb2 as cri
from pycri.core.rpcs.base import RuntimeBase, rpc
from pycri.core.validation import validate_exec_cmd
from pycri.errors import InvalidArgumentError

__all__ = ["ExecSyncRPCs"]


class ExecSyncRPCs(RuntimeBase):
    """ExecSync; the shim runs the command and keeps the timeout."""

    @rpc("ExecSync")
    def exec_sync(self, request: cri.ExecSyncRequest) -> cri.ExecSyncResponse:
        container_id = self._resolve_container(request.container_id)
        validate_exec_cmd(list(request.cmd))
        if request.timeout < 0:
            raise InvalidArgumentError("timeout must not be negative")
        self._require_running(container_id, "exec in")
        return self.shim.exec_sync(container_id, list(request.cmd), request.timeout)
