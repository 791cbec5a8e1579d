"""The fake image service: ListImages, ImageStatus, PullImage, RemoveImage, ImageFsInfo.

The images themselves (ids, sizes, configs) are :mod:`pycri_shims.fake.image_store`'s;
this module adds the CRI's behaviour: a simulated download with progress
(``pull_delay``), the sandbox image pinned, removal while containers run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pycri.api import api_pb2 as cri
from pycri.core.images import is_image_id, is_sandbox_image, normalize_reference, parse_reference
from pycri.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from pycri.shim import PullProgress
from pycri_shims.fake.image_store import FakeImage, ImageStore, image_config_for
from pycri_shims.fake.stats import CONTAINER_FS, IMAGE_FS, filesystem_usage, writable_layer_bytes
from pycri_shims.fake.store import FakeStore

__all__ = ["FakeImages"]

INODES_PER_IMAGE = 1_500


class FakeImages:
    """The image service of one fake runtime, under the store's lock."""

    def __init__(
        self, store: FakeStore, images: ImageStore, pause_image: str, pull_delay: float
    ) -> None:
        self._store = store
        self._images = images
        #: seconds a pull takes (a simulated download, in steps with progress)
        self.pull_delay = pull_delay
        #: the sandbox image: "pulled" by RunPodSandbox when missing, reported pinned
        self.pause_image = normalize_reference(pause_image)

    @property
    def registry(self) -> frozenset[str] | None:
        """The references the fake registry serves (None: any)."""
        return self._images.registry

    def count(self) -> int:
        return len(self._images.images())

    def _message(self, image: FakeImage) -> cri.Image:
        message = image.to_message()
        message.pinned = is_sandbox_image(message, self.pause_image)
        return message

    def list_images(self) -> list[cri.Image]:
        with self._store.lock:
            return [self._message(image) for image in self._images.images()]

    def image_status(self, image: str) -> cri.Image | None:
        with self._store.lock:
            found = self._images.find(image)
            return self._message(found) if found else None

    def pull_image(
        self,
        image: str,
        auth: cri.AuthConfig | None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> str:
        with self._store.lock:
            self._store.check_open()
            self._images.check_pullable(image)
        if self.pull_delay or progress is not None:
            self._simulate_download(image, progress)
        with self._store.lock:
            self._store.check_open()
            return self._images.add(image).id

    def _simulate_download(
        self, image: str, progress: Callable[[PullProgress], None] | None
    ) -> None:
        total = image_config_for(parse_reference(image).repository).size
        report = progress or (lambda step: None)
        report(PullProgress(image, "Resolving"))
        steps = 4
        for step in range(1, steps + 1):
            time.sleep(self.pull_delay / steps)
            report(PullProgress(image, "Downloading", total * step // steps, total))
        report(PullProgress(image, "Pull complete", total, total))

    def remove_image(self, image: str) -> None:
        with self._store.lock:
            found = self._images.find(image)
            if found is None:
                raise NotFoundError(f"image {image!r} not found")
            # as containerd's CRI: gone even while containers use it; they keep running
            self._images.remove(found)

    def image_fs_info(self) -> cri.ImageFsInfoResponse:
        now = time.time_ns()
        with self._store.lock:
            images = self._images.images()
            layers = [writable_layer_bytes(c) for c in self._store.containers.values()]
        return cri.ImageFsInfoResponse(
            image_filesystems=[
                filesystem_usage(
                    IMAGE_FS,
                    sum(i.size for i in images),
                    len(images) * INODES_PER_IMAGE,
                    now,
                )
            ],
            container_filesystems=[
                filesystem_usage(
                    CONTAINER_FS,
                    sum(used for used, _ in layers),
                    sum(inodes for _, inodes in layers),
                    now,
                )
            ],
        )

    # -- for the other resources ---------------------------------------------------

    def preload(self, reference: str) -> None:
        """An image already on the node: the registry is not asked."""
        with self._store.lock:
            self._images.add(normalize_reference(reference))

    def find_for_container(self, reference: str) -> FakeImage:
        """The image a container config names; NotFoundError says to pull it first."""
        try:
            ref = reference if is_image_id(reference) else normalize_reference(reference)
        except InvalidArgumentError:
            ref = reference
        with self._store.lock:
            image = self._images.find(ref)
        if image is None:
            raise NotFoundError(
                f"failed to get image {ref!r}: not found in the fake image store; pull it first"
            )
        return image

    def ensure_pause_image(self) -> None:
        """Pull the sandbox image when missing, as the engine shims do (under the lock)."""
        if self._images.find(self.pause_image) is not None:
            return
        try:
            self._images.check_pullable(self.pause_image)
        except NotFoundError as err:
            raise FailedPreconditionError(
                f"the sandbox image {self.pause_image} is not in the fake image store and "
                f"cannot be pulled ({err.message}); preload it or choose another with "
                "--shim-option pause_image=REF"
            ) from err
        self._images.add(self.pause_image)
