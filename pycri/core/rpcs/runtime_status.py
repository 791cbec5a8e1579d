"""Version, Status, RuntimeConfig, UpdateRuntimeConfig: what the runtime is and how it fares."""

from __future__ import annotations

from pycri import __version__
from pycri.api import api_pb2 as cri
from pycri.core.rpcs.base import RuntimeBase, rpc
from pycri.errors import CRIError

__all__ = ["RuntimeStatusRPCs"]

RUNTIME_NAME = "pycri"
CRI_API_VERSION = "v1"
KUBELET_API_VERSION = "0.1.0"
#: serialised VersionResponses kept, one per engine version string seen
_VERSIONS_KEPT = 16


class RuntimeStatusRPCs(RuntimeBase):
    """The runtime's identity, health and configuration."""

    def _engine_version(self) -> str:
        try:
            return self.shim.runtime_version()
        except CRIError as err:
            return f"engine unreachable: {err.message}"

    def _version_response(self, engine: str) -> cri.VersionResponse:
        return cri.VersionResponse(
            version=KUBELET_API_VERSION,
            runtime_name=RUNTIME_NAME,
            runtime_version=f"{__version__} ({self.shim.name} shim, {engine})",
            runtime_api_version=CRI_API_VERSION,
        )

    @rpc("Version")
    def version(self, request: cri.VersionRequest) -> cri.VersionResponse:
        return self._version_response(self._engine_version())

    @rpc("Version", encoded=True)
    def version_encoded(self, request: cri.VersionRequest) -> bytes:
        """:meth:`version` serialised; the engine is still asked on every call."""
        engine = self._engine_version()
        encoded = self._versions.get(engine)
        if encoded is None:
            encoded = self._version_response(engine).SerializeToString()
            if len(self._versions) >= _VERSIONS_KEPT:
                self._versions = {}  # an engine whose version text keeps changing
            self._versions[engine] = encoded
        return encoded

    @rpc("Status")
    def status(self, request: cri.StatusRequest) -> cri.StatusResponse:
        response = cri.StatusResponse(
            status=cri.RuntimeStatus(conditions=self.shim.conditions()),
            runtime_handlers=[
                cri.RuntimeHandler(name=name, features=self.shim.runtime_handler_features(name))
                for name in self.shim.runtime_handlers()
            ],
            features=cri.RuntimeFeatures(
                supplemental_groups_policy=self.shim.supplemental_groups_policy()
            ),
        )
        if request.verbose:
            response.info.update(self.shim.info())
        return response

    @rpc("RuntimeConfig")
    def runtime_config(self, request: cri.RuntimeConfigRequest) -> cri.RuntimeConfigResponse:
        return cri.RuntimeConfigResponse(
            linux=cri.LinuxRuntimeConfiguration(cgroup_driver=self.shim.cgroup_driver())
        )

    @rpc("UpdateRuntimeConfig")
    def update_runtime_config(
        self, request: cri.UpdateRuntimeConfigRequest
    ) -> cri.UpdateRuntimeConfigResponse:
        self.shim.update_runtime_config(request.runtime_config)
        return cri.UpdateRuntimeConfigResponse()
