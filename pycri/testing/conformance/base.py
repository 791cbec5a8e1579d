"""The fixtures every conformance test uses: a real CRIServer on a unix socket, a client, pods."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.runtime import CRIRuntime
from pycri.server.server import CRIServer
from pycri.shim import Shim
from pycri.testing.conformance.config import ConformanceConfig
from pycri.testing.conformance.pods import PodFactory, wait_for

__all__ = ["ConformanceBase"]


class ConformanceBase:
    """The fixtures and helpers of every area's tests; the ``shim`` fixture is the subclass's."""

    @pytest.fixture
    def conformance(self) -> ConformanceConfig:
        return ConformanceConfig()

    @pytest.fixture
    def shim(self) -> Iterator[Shim]:
        raise NotImplementedError("subclasses provide the shim fixture")

    @pytest.fixture
    def client(self, shim: Shim, tmp_path: Path) -> Iterator[CRIClient]:
        runtime = CRIRuntime(shim)
        server = CRIServer(runtime, f"unix://{tmp_path / 'cri.sock'}").start()
        client = CRIClient(server.address, timeout=60)
        try:
            yield client
        finally:
            client.close()
            server.stop(grace=1.0)

    @pytest.fixture
    def pods(
        self, client: CRIClient, tmp_path: Path, conformance: ConformanceConfig
    ) -> Iterator[PodFactory]:
        factory = PodFactory(client, tmp_path / "logs", conformance.image)
        try:
            yield factory
        finally:
            factory.cleanup()

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def status(client: CRIClient, container_id: str) -> cri.ContainerStatus:
        return client.container_status(cri.ContainerStatusRequest(container_id=container_id)).status

    def wait_exited(
        self, client: CRIClient, container_id: str, conformance: ConformanceConfig
    ) -> cri.ContainerStatus:
        wait_for(
            lambda: self.status(client, container_id).state == cri.CONTAINER_EXITED,
            conformance.state_timeout,
            f"container {container_id[:13]} to exit",
        )
        return self.status(client, container_id)

    @staticmethod
    def kube_system_pod(pods: PodFactory, app: str, **labels: str) -> cri.PodSandboxConfig:
        """A pod named the way a Deployment's ReplicaSet names its pods, in kube-system."""
        config = pods.config(**labels)
        suffix = uuid.uuid4().hex
        config.metadata.name = f"{app}-{suffix[:10]}-{suffix[10:15]}"
        config.metadata.namespace = "kube-system"
        return config
