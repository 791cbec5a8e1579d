"""The conformance tests of image volumes (a container mounting an image)."""

from __future__ import annotations

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import (
    InvalidArgumentError,
    NotFoundError,
)
from pycri.shim import Shim
from pycri.testing.conformance.base import ConformanceBase
from pycri.testing.conformance.config import ConformanceConfig
from pycri.testing.conformance.pods import PodFactory

__all__ = ["ImageVolumeConformance"]


class ImageVolumeConformance(ConformanceBase):
    """Image volumes."""

    def image_volume_leftovers(self, shim: Shim) -> list[str]:
        """What of the shim's image volumes is still there (mounts, trees, snapshots).

        Engine shims override this; the check runs once every container is removed.
        """
        return []

    def test_image_volume(
        self, client: CRIClient, pods: PodFactory, shim: Shim, conformance: ConformanceConfig
    ) -> None:
        image = client.image_status(
            cri.ImageStatusRequest(image=cri.ImageSpec(image=conformance.image))
        ).image
        assert image.id, f"{conformance.image} is not in the runtime"
        pod_id, pod_config = pods.run()
        target = "/mnt/image-volume"

        def create(name: str, *, readonly: bool = True, sub_path: str = "", ref: str = "") -> str:
            mount = cri.Mount(
                container_path=target,
                readonly=readonly,
                image=cri.ImageSpec(image=ref or conformance.image),
                image_sub_path=sub_path,
            )
            config = cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name=name),
                image=cri.ImageSpec(image=conformance.image),
                command=["sleep", "60"],
                mounts=[mount],
            )
            return client.create_container(
                cri.CreateContainerRequest(
                    pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config
                )
            ).container_id

        def run(container_id: str, *cmd: str) -> cri.ExecSyncResponse:
            return client.exec_sync(
                cri.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=10)
            )

        with pytest.raises(InvalidArgumentError, match="read-only"):
            create("writable", readonly=False)
        with pytest.raises(InvalidArgumentError, match="does not exist"):
            create("no-such-sub-path", sub_path="not-existing")
        with pytest.raises(InvalidArgumentError, match=r"\.\."):
            create("escaping", sub_path="../etc")
        with pytest.raises(InvalidArgumentError, match="not a directory"):
            create("file-sub-path", sub_path="etc/passwd")
        with pytest.raises(NotFoundError):
            create("absent-image", ref="docker.io/pycri/no-such-image-volume:0")
        assert self.image_volume_leftovers(shim) == []  # refused creates leave nothing

        whole = create("whole", ref=image.id)  # by id, as critest and the kubelet do
        sub = create("sub", sub_path="etc")
        for container_id in (whole, sub):
            client.start_container(cri.StartContainerRequest(container_id=container_id))

        assert run(whole, "cat", f"{target}/etc/passwd").stdout.startswith(b"root:")
        touched = run(whole, "touch", f"{target}/written")
        assert touched.exit_code != 0
        assert b"Read-only file system" in touched.stderr
        executed = run(whole, f"{target}/bin/sh", "-c", "echo ran")
        assert (executed.exit_code, executed.stdout) == (0, b"ran\n")
        assert run(sub, "cat", f"{target}/passwd").stdout.startswith(b"root:")
        assert run(sub, "test", "-e", f"{target}/etc/passwd").exit_code != 0

        for container_id, requested, sub_path in (
            (whole, image.id, ""),
            (sub, conformance.image, "etc"),
        ):
            mounts = [m for m in self.status(client, container_id).mounts if m.image.image]
            assert [
                (m.container_path, m.readonly, m.image.image, m.image.image_ref, m.image_sub_path)
                for m in mounts
            ] == [(target, True, requested, image.id, sub_path)]

        client.remove_container(cri.RemoveContainerRequest(container_id=whole))
        assert run(sub, "cat", f"{target}/group").stdout.startswith(b"root:")  # still there
        client.remove_container(cri.RemoveContainerRequest(container_id=sub))
        assert self.image_volume_leftovers(shim) == []
