"""Images per ``imagePullPolicy``: Always pulls, IfNotPresent pulls when missing, Never never.

A failed pull leaves the container waiting with ``ErrImagePull``, then
``ImagePullBackOff`` until the back-off (10 s doubling to 5 min) allows
another try, as the kubelet does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.kubelet.model.spec import Container
from pycri.kubelet.sync.backoff import ImageBackoff
from pycri.kubelet.sync.criconfig import image_reference

__all__ = ["ImageManager", "ImageResult"]


@dataclass(frozen=True)
class ImageResult:
    """The image is ready (``ok``) or the container waits with ``reason``."""

    ok: bool
    reference: str
    reason: str = ""
    message: str = ""
    #: events to record: (type, reason, message)
    events: tuple[tuple[str, str, str], ...] = ()
    #: the image's user, for runAsNonRoot ("" when unknown)
    user: str = ""


def _user(image: cri.Image) -> str:
    if image.HasField("uid"):
        return str(image.uid.value)
    return image.username


class ImageManager:
    def __init__(self, client: CRIClient) -> None:
        self.client = client
        self.backoff = ImageBackoff()

    def _present(self, reference: str) -> cri.Image | None:
        response = self.client.image_status(
            cri.ImageStatusRequest(image=cri.ImageSpec(image=reference))
        )
        return response.image if response.HasField("image") and response.image.id else None

    def ensure(
        self,
        pod_uid: str,
        container: Container,
        sandbox_config: cri.PodSandboxConfig,
        now: float,
    ) -> ImageResult:
        reference = image_reference(container.image)
        policy = container.image_pull_policy
        try:
            present = self._present(reference)
        except CRIError as err:
            return ImageResult(False, reference, "ErrImageInspect", str(err))
        if present is not None and policy != "Always":
            message = f'Container image "{container.image}" already present on machine'
            return ImageResult(
                True, reference, events=(("Normal", "Pulled", message),), user=_user(present)
            )
        if policy == "Never":
            message = (
                f'Container image "{container.image}" is not present with pull policy of Never'
            )
            return ImageResult(
                False,
                reference,
                "ErrImageNeverPull",
                message,
                (("Warning", "ErrImageNeverPull", message),),
            )
        left = self.backoff.remaining(pod_uid, reference, now)
        if left > 0:
            message = f'Back-off pulling image "{container.image}"'
            return ImageResult(
                False, reference, "ImagePullBackOff", message, (("Normal", "BackOff", message),)
            )
        started = time.monotonic()
        pulling = ("Normal", "Pulling", f'Pulling image "{container.image}"')
        try:
            self.client.pull_image(
                cri.PullImageRequest(
                    image=cri.ImageSpec(image=reference), sandbox_config=sandbox_config
                )
            )
            pulled = self._present(reference)
        except CRIError as err:
            self.backoff.failed(pod_uid, reference, now)
            message = f'Failed to pull image "{container.image}": {err}'
            return ImageResult(
                False,
                reference,
                "ErrImagePull",
                message,
                (pulling, ("Warning", "Failed", message)),
            )
        self.backoff.succeeded(pod_uid, reference)
        took = time.monotonic() - started
        done = ("Normal", "Pulled", f'Successfully pulled image "{container.image}" in {took:.3f}s')
        return ImageResult(
            True, reference, events=(pulling, done), user=_user(pulled) if pulled else ""
        )
