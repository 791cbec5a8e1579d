"""The conformance tests of the ImageService: lifecycle, pinned sandbox images, refusals."""

from __future__ import annotations

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import (
    InvalidArgumentError,
)
from pycri.testing.conformance.base import ConformanceBase
from pycri.testing.conformance.config import ConformanceConfig
from pycri.testing.conformance.pods import PodFactory

__all__ = ["ImageConformance"]


class ImageConformance(ConformanceBase):
    """Images."""

    def test_image_lifecycle(self, client: CRIClient, conformance: ConformanceConfig) -> None:
        spec = cri.ImageSpec(image=conformance.pull_image)
        client.remove_image(cri.RemoveImageRequest(image=spec))
        assert not client.image_status(cri.ImageStatusRequest(image=spec)).HasField("image")

        ref = client.pull_image(cri.PullImageRequest(image=spec)).image_ref
        assert ref
        image = client.image_status(cri.ImageStatusRequest(image=spec)).image
        assert conformance.pull_image in image.repo_tags
        assert image.size > 0
        listed = client.list_images(
            cri.ListImagesRequest(filter=cri.ImageFilter(image=spec))
        ).images
        assert [i.id for i in listed] == [image.id]
        # every name the image is listed under finds it again (critest checks each)
        assert image.repo_digests
        for name in [image.id, *image.repo_tags, *image.repo_digests]:
            again = client.image_status(cri.ImageStatusRequest(image=cri.ImageSpec(image=name)))
            assert again.image == image, name

        client.remove_image(cri.RemoveImageRequest(image=spec))
        client.remove_image(cri.RemoveImageRequest(image=spec))
        assert not client.image_status(cri.ImageStatusRequest(image=spec)).HasField("image")

    @staticmethod
    def image(client: CRIClient, ref: str) -> cri.Image | None:
        found = client.image_status(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref)))
        return found.image if found.HasField("image") else None

    @staticmethod
    def tagged(client: CRIClient) -> dict[str, cri.Image]:
        """ListImages by tag."""
        return {tag: i for i in client.list_images().images for tag in i.repo_tags}

    def test_sandbox_image_is_pinned(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """So that the kubelet's image GC (and ``crictl rmi --prune``) keep it."""
        pods.run()  # the sandbox image is there now, pulled if it was not
        listed = self.tagged(client)
        assert listed[conformance.sandbox_image].pinned
        assert not listed[conformance.image].pinned
        sandbox = self.image(client, conformance.sandbox_image)
        assert sandbox is not None
        assert sandbox.pinned
        by_id = self.image(client, sandbox.id)
        assert by_id is not None
        assert by_id.pinned
        other = self.image(client, conformance.image)
        assert other is not None
        assert not other.pinned

    def test_remove_image_of_a_running_container(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """containerd's CRI: the image goes at once, its containers keep running."""
        spec = cri.ImageSpec(image=conformance.pull_image)
        client.pull_image(cri.PullImageRequest(image=spec))
        pod_id, pod = pods.run()
        container_id = pods.container(
            pod_id, pod, "user", ["sleep", "300"], image=conformance.pull_image
        )
        client.remove_image(cri.RemoveImageRequest(image=spec))
        assert self.image(client, conformance.pull_image) is None
        assert conformance.pull_image not in self.tagged(client)
        assert self.status(client, container_id).state == cri.CONTAINER_RUNNING
        result = client.exec_sync(
            cri.ExecSyncRequest(container_id=container_id, cmd=["echo", "alive"], timeout=20)
        )
        assert result.stdout == b"alive\n"
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

    def test_sandbox_image_removed_under_a_running_pod(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """The pod keeps running; the next RunPodSandbox pulls the image again, pinned."""
        if not conformance.sandbox_image_removable:
            pytest.skip("this run's sandbox image is shared; the shim's own tests remove theirs")
        first, _ = pods.run()
        spec = cri.ImageSpec(image=conformance.sandbox_image)
        client.remove_image(cri.RemoveImageRequest(image=spec))
        assert self.image(client, conformance.sandbox_image) is None
        second, _ = pods.run()
        for pod_id in (first, second):
            status = client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
            assert status.status.state == cri.SANDBOX_READY
        again = self.image(client, conformance.sandbox_image)
        assert again is not None
        assert again.pinned

    def test_bad_image_reference_is_invalid(self, client: CRIClient) -> None:
        with pytest.raises(InvalidArgumentError, match="image"):
            client.pull_image(cri.PullImageRequest(image=cri.ImageSpec(image="Not A Ref!")))
        with pytest.raises(InvalidArgumentError, match="image"):
            client.image_status(cri.ImageStatusRequest(image=cri.ImageSpec()))

    def test_image_fs_info(self, client: CRIClient) -> None:
        info = client.image_fs_info()
        assert info.image_filesystems
        assert info.image_filesystems[0].fs_id.mountpoint
