"""Image references: parse and normalise them the way Docker and containerd do.

``busybox`` means ``docker.io/library/busybox:latest``; a reference with a
digest drops its tag (as containerd's ParseDockerRef does). Image ids
(``sha256:<64 hex>``, or a bare prefix of at least 12 hex digits) name an
image already in the store and are accepted where an image is looked up,
never for a pull.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pycri.api import api_pb2 as cri
from pycri.errors import CRIError, InternalError, InvalidArgumentError

__all__ = [
    "ImageReference",
    "SharedPull",
    "is_image_id",
    "is_sandbox_image",
    "normalize_reference",
    "parse_reference",
]

DEFAULT_DOMAIN = "docker.io"
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_ID = re.compile(r"^(?:sha256:)?[0-9a-f]{12,64}$")
_MAX_NAME = 255


@dataclass(frozen=True)
class ImageReference:
    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or 'latest'}"


def is_image_id(text: str) -> bool:
    return bool(_ID.match(text))


def parse_reference(text: str) -> ImageReference:
    """Parse ``text``; InvalidArgumentError says what is wrong with it."""
    if not text:
        raise InvalidArgumentError("image reference is empty")
    if text != text.strip():
        raise InvalidArgumentError(f"image reference {text!r} has surrounding whitespace")
    match = _REFERENCE.match(text)
    if match is None:
        raise InvalidArgumentError(
            f"invalid image reference {text!r}: expected [registry/]repository[:tag][@digest] "
            "with a lower-case repository"
        )
    name = match["name"]
    if len(name) > _MAX_NAME:
        raise InvalidArgumentError(f"image repository name is longer than {_MAX_NAME} characters")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    digest = match["digest"]
    tag = None if digest else (match["tag"] or "latest")
    return ImageReference(domain=domain, path=path, tag=tag, digest=digest)


def normalize_reference(text: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``; ids are returned as they are."""
    if is_image_id(text):
        return text
    return str(parse_reference(text))


def is_sandbox_image(image: cri.Image, sandbox_image: str) -> bool:
    """Whether ``image`` is the configured sandbox (pause) image, which the CRI pins.

    ``sandbox_image`` is matched, normalised, against the image's tags and
    digests; an id (or a prefix of at least 12 hex digits) against its id.
    """
    try:
        wanted = normalize_reference(sandbox_image)
    except InvalidArgumentError:
        return False
    if wanted in image.repo_tags or wanted in image.repo_digests:
        return True
    if not is_image_id(wanted):
        return False
    return image.id.removeprefix("sha256:").startswith(wanted.removeprefix("sha256:"))


class SharedPull:
    """One pull for every caller that found the image missing at the same time.

    A caller reads ``attempts`` before the engine call that may find the image
    missing, and passes it to ``pull`` when it did: a pull tried since then
    answers it too, with that pull's success or its error. N pods starting
    together on a node without the sandbox image thus cost one pull (or one
    failure), not N; a later caller tries again.
    """

    def __init__(self, pull: Callable[[], None]) -> None:
        self._pull = pull
        self._lock = threading.Lock()
        self._attempts = 0
        self._error: CRIError | None = None

    @property
    def attempts(self) -> int:
        return self._attempts

    def pull(self, seen: int) -> None:
        """Pull unless a pull was tried since ``seen``; raise the (shared) failure."""
        with self._lock:
            if self._attempts == seen:
                self._error = None
                try:
                    self._pull()
                except CRIError as err:
                    self._error = err
                except Exception as err:  # shared with callers that expect a CRIError
                    self._error = InternalError(f"pulling the image failed: {err!r}")
                # counted once over: a caller that read the count during the pull found
                # the image missing too, and this pull answers it
                self._attempts += 1
            error = self._error
        if error is not None:
            # a copy each: one exception raised in several threads would share a traceback
            raise copy.copy(error)
