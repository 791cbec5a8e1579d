"""The conformance tests of recursive read-only mounts (KEP-3857)."""

from __future__ import annotations

import os
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.rro_staging import RROStaging
from pycri.errors import (
    InvalidArgumentError,
)
from pycri.shim import Shim
from pycri.testing import require_real
from pycri.testing.conformance.base import ConformanceBase
from pycri.testing.conformance.config import ConformanceConfig
from pycri.testing.conformance.pods import PodFactory
from pycri.testing.submounts import tree_with_submount

__all__ = ["RecursiveReadOnlyConformance"]


class RecursiveReadOnlyConformance(ConformanceBase):
    """Recursive read-only mounts."""

    @staticmethod
    def _create_with_mounts(
        client: CRIClient,
        pod_id: str,
        pod: cri.PodSandboxConfig,
        image: str,
        mounts: list[cri.Mount],
        start: bool = True,
    ) -> str:
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=f"rro-{uuid.uuid4().hex[:8]}"),
            image=cri.ImageSpec(image=image),
            command=["sleep", "300"],
            mounts=mounts,
        )
        request = cri.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=pod
        )
        container_id = client.create_container(request).container_id
        if start:
            client.start_container(cri.StartContainerRequest(container_id=container_id))
        return container_id

    def test_recursive_read_only_mounts(
        self,
        client: CRIClient,
        pods: PodFactory,
        conformance: ConformanceConfig,
        shim: Shim,
        tmp_path: Path,
    ) -> None:
        """Every level read-only, the CRI's refusals, and no staging left behind."""
        features = {h.name: h.features for h in client.status().runtime_handlers}[""]
        pod_id, pod = pods.run()
        host = tmp_path / "rro-host"
        rro = cri.Mount(
            host_path=str(host), container_path="/mnt/rro", readonly=True, recursive_read_only=True
        )
        if not features.recursive_read_only_mounts:
            host.mkdir()
            with pytest.raises(InvalidArgumentError, match="does not support recursive"):
                self._create_with_mounts(client, pod_id, pod, conformance.image, [rro])
            return
        if conformance.real_mounts:
            require_real(os.geteuid() == 0, "mounting a tmpfs under the host path needs root")
        staging = getattr(shim, "staging", None)
        staged_before = set(staging.staged()) if isinstance(staging, RROStaging) else set()

        def refused(why: str, **fields: object) -> None:
            mount = cri.Mount(host_path=str(host), container_path="/mnt/rro", **fields)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError, match=why):
                self._create_with_mounts(client, pod_id, pod, conformance.image, [mount])

        with ExitStack() as stack:
            tree = (
                stack.enter_context(tree_with_submount(host)) if conformance.real_mounts else None
            )
            if tree is None:
                host.mkdir()
            refused("must also be read-only", recursive_read_only=True)
            for propagation in (cri.PROPAGATION_HOST_TO_CONTAINER, cri.PROPAGATION_BIDIRECTIONAL):
                refused(
                    "private propagation",
                    readonly=True,
                    recursive_read_only=True,
                    propagation=propagation,
                )
            plain = cri.Mount(host_path=str(host), container_path="/mnt/ro", readonly=True)
            container_id = self._create_with_mounts(
                client, pod_id, pod, conformance.image, [rro, plain]
            )
            reported = {m.container_path: m for m in self.status(client, container_id).mounts}
            assert reported["/mnt/rro"].host_path == str(host)
            assert reported["/mnt/rro"].readonly
            assert reported["/mnt/rro"].recursive_read_only
            assert reported["/mnt/ro"].readonly
            assert not reported["/mnt/ro"].recursive_read_only
            if tree is not None:
                script = (
                    "touch /mnt/rro/top; touch /mnt/rro/sub/deep; "
                    "touch /mnt/ro/sub/deep && echo plain-submount-writable"
                )
                result = client.exec_sync(
                    cri.ExecSyncRequest(
                        container_id=container_id, cmd=["sh", "-c", script], timeout=30
                    )
                )
                output = (result.stdout + result.stderr).decode()
                assert output.count("Read-only file system") == 2, output
                assert "plain-submount-writable" in output, output
                # the container has its own copy once started: the host's staging is gone
                assert tree.copies() == 0
                # one never started keeps its staging until RemoveContainer
                created = self._create_with_mounts(
                    client, pod_id, pod, conformance.image, [rro], start=False
                )
                assert tree.copies() == 1
                client.remove_container(cri.RemoveContainerRequest(container_id=created))
                assert tree.copies() == 0
            client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
            if tree is not None:
                assert tree.copies() == 0
        if isinstance(staging, RROStaging):
            assert set(staging.staged()) <= staged_before
