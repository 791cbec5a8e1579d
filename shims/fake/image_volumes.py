"""Image volumes (``Mount.image``) in the fake: the image's files, read-only, where mounted."""

from __future__ import annotations

from collections.abc import Callable

from pycri.api import api_pb2 as cri
from pycri.errors import InvalidArgumentError
from pycri_shims.fake.image_store import FakeImage, image_files

__all__ = ["image_volume_files", "with_image_refs"]


def image_volume_files(
    config: cri.ContainerConfig, find: Callable[[str], FakeImage]
) -> dict[str, bytes]:
    """The files of the config's image mounts (core checked them), where they appear."""
    files: dict[str, bytes] = {}
    for index, mount in enumerate(config.mounts):
        if not mount.HasField("image"):
            continue
        tree = image_files(find(mount.image.image))
        sub = "/" + mount.image_sub_path if mount.image_sub_path else ""
        target = mount.container_path.rstrip("/")
        if sub in tree:  # a file: image volumes mount directories only (core's rule)
            raise InvalidArgumentError(
                f"config.mounts[{index}]: image_sub_path {mount.image_sub_path!r} "
                "is not a directory: image volumes mount directories only"
            )
        inside = {p: d for p, d in tree.items() if p.startswith(sub + "/")}
        if not inside:
            raise InvalidArgumentError(
                f"config.mounts[{index}]: image_sub_path {mount.image_sub_path!r} "
                "does not exist in the image"
            )
        files.update({target + p[len(sub) :]: d for p, d in inside.items()})
    return files


def with_image_refs(
    config: cri.ContainerConfig, find: Callable[[str], FakeImage]
) -> cri.ContainerConfig:
    """``config`` with each image mount's image id, as ContainerStatus reports it."""
    if not any(m.HasField("image") for m in config.mounts):
        return config
    copy = cri.ContainerConfig()
    copy.CopyFrom(config)
    for mount in copy.mounts:
        if mount.HasField("image"):
            mount.image.image_ref = find(mount.image.image).id
    return copy
