"""The image RPCs: ListImages, StreamImages, ImageStatus, PullImage, RemoveImage, ImageFsInfo."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pycri.api import api_pb2 as cri
from pycri.core import filters
from pycri.core.images import is_image_id, normalize_reference
from pycri.core.rpcs.base import RuntimeBase, batches, rpc
from pycri.core.validation import validate_image_spec
from pycri.errors import InvalidArgumentError, NotFoundError

__all__ = ["ImageRPCs"]


class ImageRPCs(RuntimeBase):
    """The ImageService: images and the filesystem they are kept on."""

    @rpc("ListImages")
    def list_images(self, request: cri.ListImagesRequest) -> cri.ListImagesResponse:
        return cri.ListImagesResponse(images=self._images(request))

    def _images(self, request: cri.ListImagesRequest | cri.StreamImagesRequest) -> list[cri.Image]:
        wanted = None
        if request.HasField("filter") and request.filter.image.image:
            wanted = normalize_reference(request.filter.image.image)
        return filters.filter_images(self.shim.list_images(), wanted)

    @rpc("ImageStatus")
    def image_status(self, request: cri.ImageStatusRequest) -> cri.ImageStatusResponse:
        ref = validate_image_spec(request.image, "image")
        image = self.shim.image_status(ref)
        if image is None:
            return cri.ImageStatusResponse()
        return cri.ImageStatusResponse(image=image)

    @rpc("PullImage")
    def pull_image(self, request: cri.PullImageRequest) -> cri.PullImageResponse:
        ref = validate_image_spec(request.image, "image")
        if is_image_id(ref):
            raise InvalidArgumentError(f"image {ref!r} is an image id; pull needs a reference")
        auth = request.auth if request.HasField("auth") else None
        image_ref = self.shim.pull_image(ref, auth, self.pulls.publish)
        return cri.PullImageResponse(image_ref=image_ref)

    @rpc("RemoveImage")
    def remove_image(self, request: cri.RemoveImageRequest) -> cri.RemoveImageResponse:
        ref = validate_image_spec(request.image, "image")
        try:
            self.shim.remove_image(ref)
        except NotFoundError:
            pass  # already gone: remove is idempotent
        return cri.RemoveImageResponse()

    @rpc("ImageFsInfo")
    def image_fs_info(self, request: cri.ImageFsInfoRequest) -> cri.ImageFsInfoResponse:
        return self.shim.image_fs_info()

    @rpc("StreamImages")
    def stream_images(
        self, request: cri.StreamImagesRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamImagesResponse]:
        # not self.list_images: that is another RPC to the shim's before/after hooks
        for batch in batches(self._images(request)):
            yield cri.StreamImagesResponse(images=batch)
