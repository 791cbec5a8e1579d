"""Image volumes on containerd through ``ctr images mount`` (nerdctl 1.7 has no image mounts).

Each image mount of a container is a read-only view snapshot of the image,
mounted by ``ctr -n <ns> images mount <name> <target>`` at
``<state_dir>/image-volumes/<engine name>/<mount index>`` and bind-mounted
read-only into the container. ctr keys the snapshot and its lease by the
target path, so ``ctr images unmount --rm <target>`` undoes both.

Nothing is kept in memory. After a container is removed, every directory
whose engine name no container of the namespace has any more is unmounted
and deleted, so a restarted server (or one killed between ``rm`` and the
unmount) leaves nothing for good. An flock on ``<root>`` orders
mount + create against that sweep, between threads and between servers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable

from pycri.api import api_pb2 as cri
from pycri.core.image_volumes import ImageMount, sub_path_source, with_host_paths
from pycri.core.linux import locked_directory
from pycri.errors import CRIError, InternalError, NotFoundError
from pycri_shims.nerdctl.runner import NerdctlRunner

__all__ = ["ImageVolumes", "with_image_refs"]

log = logging.getLogger(__name__)


def _is_mount(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        # field 5 is the mount point, with spaces etc. escaped as octal
        escaped = path.replace("\\", "\\134").replace(" ", "\\040").replace("\n", "\\012")
        return any(line.split(" ")[4] == escaped for line in mountinfo)


def with_image_refs(config: cri.ContainerConfig, mounts: list[ImageMount]) -> cri.ContainerConfig:
    """A copy of ``config`` whose image mounts carry their image's id (for ContainerStatus)."""
    copy = cri.ContainerConfig()
    copy.CopyFrom(config)
    for mount in mounts:
        copy.mounts[mount.index].image.image_ref = mount.image_ref
    return copy


class ImageVolumes:
    """The image mounts of one nerdctl shim's containers."""

    def __init__(self, ctr: NerdctlRunner, state_dir: str) -> None:
        self._ctr = ctr
        self.root = os.path.join(state_dir, "image-volumes")

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return locked_directory(self.root)

    def mount(
        self, name: str, config: cri.ContainerConfig, mounts: list[ImageMount]
    ) -> cri.ContainerConfig:
        """Mount each image for container ``name``; the config with binds of them instead.

        Call under :meth:`locked`; on failure what was mounted is undone.
        """
        self.release(name)  # a failed earlier attempt's, if any
        sources: list[tuple[ImageMount, str]] = []
        try:
            for mount in mounts:
                target = os.path.join(self.root, name, str(mount.index))
                os.makedirs(target, mode=0o755)
                names = mount.repo_tags or mount.repo_digests
                if not names:
                    raise NotFoundError(
                        f"image {mount.image!r} has no name ctr can mount it by; tag it"
                    )
                self._ctr.run(["images", "mount", names[0], target])
                where = f"config.mounts[{mount.index}]"
                sources.append((mount, sub_path_source(target, mount.sub_path, where)))
        except BaseException:
            self.release(name)
            raise
        return with_host_paths(config, sources)

    def release(self, name: str) -> None:
        """Unmount container ``name``'s images, remove their snapshots and directories."""
        directory = os.path.join(self.root, name)
        if not os.path.isdir(directory):
            return
        for entry in sorted(os.listdir(directory)):
            target = os.path.join(directory, entry)
            # without a mount, --rm still removes a snapshot and lease left by a crash
            result = self._ctr.run(["images", "unmount", "--rm", target], check=False)
            if result.returncode != 0 and _is_mount(target):
                raise InternalError(
                    f"cannot unmount image volume {target}: {result.stderr.strip()}"
                )
            os.rmdir(target)
        shutil.rmtree(directory, ignore_errors=True)

    def prune(self, existing_names: Callable[[], set[str]]) -> None:
        """Release every container directory whose container is gone."""
        if not os.path.isdir(self.root) or not os.listdir(self.root):
            return
        with self.locked():
            alive = existing_names()
            for name in os.listdir(self.root):
                if name not in alive:
                    try:
                        self.release(name)
                    except CRIError as err:  # the next removal tries again
                        log.warning("%s", err.message)

    def leftovers(self) -> list[str]:
        """Directories, mounts, snapshots and leases of image volumes that exist now (for tests)."""
        prefix = self.root + "/"
        found = [
            f"directory {name}"
            for name in (os.listdir(self.root) if os.path.isdir(self.root) else [])
        ]
        with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
            found += [
                f"mount {line.split(' ')[4]}"
                for line in mountinfo
                if line.split(" ")[4].startswith(prefix)
            ]
        for what in ("snapshots", "leases"):
            listing = self._ctr.run([what, "ls"]).stdout.splitlines()[1:]
            found += [f"{what} {line.split()[0]}" for line in listing if line.startswith(prefix)]
        return found
