"""Image volumes (CRI ``Mount.image``, Kubernetes' ImageVolume): the rules every shim shares.

An image mount shows an image's filesystem, read-only, at ``container_path``
(or one directory of it, ``image_sub_path``). Core checks the
request and finds the image once; shims only make the image's files appear
(:func:`sub_path_source` joins the sub path safely) and report the mount
back with :func:`reported_mount`.

A missing image is refused with NOT_FOUND, not pulled: that is containerd's
CRI (2.1+, ``mutateImageMount`` resolves the image locally and fails
otherwise), because the kubelet pulls image volumes itself, with the pod's
pull secrets and policy, before CreateContainer; a runtime pull here would
do it without credentials and behind the kubelet's back.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pycri.api import api_pb2 as cri
from pycri.core.images import normalize_reference
from pycri.errors import InvalidArgumentError, NotFoundError

__all__ = [
    "ImageMount",
    "check_sub_path",
    "decode_image_mounts",
    "encode_image_mounts",
    "find_image_mounts",
    "reported_mount",
    "sub_path_source",
    "validate_image_mounts",
    "with_host_paths",
]


class _ImageLookup(Protocol):
    def image_status(self, image: str) -> cri.Image | None: ...


@dataclass(frozen=True)
class ImageMount:
    """One image mount of a container config, with the image it names."""

    index: int  # position in config.mounts
    container_path: str
    image: str  # as requested (reported back as such)
    image_ref: str  # the image's id: what PullImage and ImageStatus answer for it
    sub_path: str  # normalised, relative; "" for the whole image
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()


def check_sub_path(sub_path: str, field: str) -> str:
    """``sub_path`` if it is normalised, relative and inside the image; else INVALID_ARGUMENT."""
    if not sub_path:
        return ""
    problem = ""
    if "\x00" in sub_path:
        problem = "contains a NUL character"
    elif sub_path.startswith("/"):
        problem = "must be relative to the image's root"
    elif ".." in sub_path.split("/"):
        problem = "must not contain '..'"
    elif posixpath.normpath(sub_path) != sub_path or sub_path == ".":
        problem = f"must be normalised (e.g. {posixpath.normpath(sub_path).lstrip('/')!r})"
    if problem:
        raise InvalidArgumentError(f"{field} {sub_path[:200]!r} {problem}")
    return sub_path


def validate_image_mounts(config: cri.ContainerConfig, field: str = "config") -> None:
    """The static rules (no engine asked): read-only, no host path, a sane sub path."""
    for index, mount in enumerate(config.mounts):
        where = f"{field}.mounts[{index}]"
        if not mount.HasField("image"):
            if mount.image_sub_path:
                raise InvalidArgumentError(f"{where}.image_sub_path is set without an image")
            continue
        if not mount.image.image:
            raise InvalidArgumentError(f"{where}.image.image is required for an image mount")
        try:
            normalize_reference(mount.image.image)
        except InvalidArgumentError as err:
            raise InvalidArgumentError(f"{where}.image.image: {err.message}") from None
        if mount.host_path:
            raise InvalidArgumentError(
                f"{where} names both an image and host_path {mount.host_path!r}: an image "
                "mount takes its files from the image only"
            )
        if not mount.readonly:
            raise InvalidArgumentError(
                f"{where}: image volumes are read-only; set readonly=true "
                f"(image {mount.image.image!r} at {mount.container_path!r})"
            )
        check_sub_path(mount.image_sub_path, f"{where}.image_sub_path")


def find_image_mounts(
    shim: _ImageLookup, config: cri.ContainerConfig, field: str = "config"
) -> list[ImageMount]:
    """Every image mount of ``config`` with its image found in the store (NOT_FOUND if absent).

    Call after :func:`validate_image_mounts`.
    """
    found: list[ImageMount] = []
    for index, mount in enumerate(config.mounts):
        if not mount.HasField("image"):
            continue
        ref = normalize_reference(mount.image.image)
        image = shim.image_status(ref)
        if image is None:
            raise NotFoundError(
                f"{field}.mounts[{index}].image {mount.image.image!r} is not in the image "
                "store; pull it first (the kubelet pulls image volumes before CreateContainer)"
            )
        found.append(
            ImageMount(
                index=index,
                container_path=mount.container_path,
                image=mount.image.image,
                image_ref=image.id,
                sub_path=mount.image_sub_path,
                repo_tags=tuple(image.repo_tags),
                repo_digests=tuple(image.repo_digests),
            )
        )
    return found


def sub_path_source(root: str, sub_path: str, where: str) -> str:
    """The host path of ``sub_path`` inside an image's tree at ``root``.

    INVALID_ARGUMENT when it does not exist, is not a directory (a single
    file is a non-goal of the ImageVolume KEP; containerd's CRI refuses it
    too), or resolves (through the image's own symlinks, absolute ones
    included) outside ``root``: the bind mount must show the image's files
    and nothing of the host.
    """
    if not sub_path:
        return root
    real_root = os.path.realpath(root)
    source = os.path.realpath(os.path.join(real_root, sub_path))
    if source != real_root and not source.startswith(real_root + os.sep):
        raise InvalidArgumentError(
            f"{where}: image_sub_path {sub_path!r} leads outside the image (through a symlink)"
        )
    if not os.path.lexists(source):
        raise InvalidArgumentError(
            f"{where}: image_sub_path {sub_path!r} does not exist in the image"
        )
    if not os.path.isdir(source):
        raise InvalidArgumentError(
            f"{where}: image_sub_path {sub_path!r} is not a directory: "
            "image volumes mount directories only"
        )
    return source


def encode_image_mounts(mounts: Iterable[ImageMount]) -> str:
    """The image mounts as an engine label, so ContainerStatus can report them after a restart."""
    return json.dumps(
        [
            {"path": m.container_path, "image": m.image, "ref": m.image_ref, "sub": m.sub_path}
            for m in mounts
        ],
        separators=(",", ":"),
    )


def decode_image_mounts(label: str) -> dict[str, cri.Mount]:
    """container_path -> the mount to report, from :func:`encode_image_mounts`'s label."""
    if not label:
        return {}
    try:
        items = json.loads(label)
    except ValueError:
        return {}
    mounts: dict[str, cri.Mount] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            mounts[item["path"]] = reported_mount(
                item["path"],
                str(item.get("image", "")),
                str(item.get("ref", "")),
                str(item.get("sub", "")),
            )
    return mounts


def reported_mount(container_path: str, image: str, image_ref: str, sub_path: str) -> cri.Mount:
    """How ContainerStatus reports an image mount: the image as requested, with its id."""
    return cri.Mount(
        container_path=container_path,
        readonly=True,
        image=cri.ImageSpec(image=image, image_ref=image_ref),
        image_sub_path=sub_path,
    )


def with_host_paths(
    config: cri.ContainerConfig, sources: Sequence[tuple[ImageMount, str]]
) -> cri.ContainerConfig:
    """A copy of ``config`` whose image mounts are read-only binds of ``sources``' host paths.

    What an engine without image mounts is given: its own bind-mount code
    then does the rest.
    """
    copy = cri.ContainerConfig()
    copy.CopyFrom(config)
    for image_mount, host_path in sources:
        mount = copy.mounts[image_mount.index]
        mount.ClearField("image")
        mount.image_sub_path = ""
        mount.host_path = host_path
        mount.readonly = True
    return copy
