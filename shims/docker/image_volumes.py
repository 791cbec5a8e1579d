"""Image volumes on Docker 20.10, which has no image mounts of its own.

Each image is exported once (a stopped helper container's ``export``
stream, extracted safely) to ``<state_dir>/image-volumes/<image hex id>``,
and bind-mounted read-only. Who uses a tree is in the containers' labels
(``io.pycri.image-volume.<hex>``), not in memory: after a container is
removed, every tree no pycri container names is deleted, so a restarted
server (or one killed between ``rm`` and the deletion) leaves nothing for
good. An flock on ``<root>`` orders export, create and deletion
between threads and between servers sharing the directory.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.core.engine import CONTAINER_KIND, KIND_LABEL, PYCRI_PREFIX
from pycri.core.image_volumes import (
    ImageMount,
    decode_image_mounts,
    encode_image_mounts,
    sub_path_source,
    with_host_paths,
)
from pycri.core.linux import locked_directory
from pycri.errors import InternalError
from pycri_shims.docker.connection import DockerConnection

__all__ = ["IMAGE_MOUNTS", "ImageVolumes", "extract_tar", "reported_mounts", "user_label"]

#: io.pycri.<key> of the label holding a container's image mounts (for ContainerStatus)
IMAGE_MOUNTS = "image-mounts"
_USER_PREFIX = "image-volume."
_EXPORT_LABEL = "io.pycri.image-export"
_TMP = ".tmp-"


def user_label(image_ref: str) -> str:
    """io.pycri.<key> marking a container as a user of the image's tree."""
    return _USER_PREFIX + _hex(image_ref)


def _hex(image_ref: str) -> str:
    return image_ref.removeprefix("sha256:")


class _ChunkReader(io.RawIOBase):
    """A file over Docker's export chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _member_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's ``tar`` filter, plus: no device nodes, no hard link to outside ``dest``.

    The ``tar`` filter refuses absolute names and names that resolve (through
    links extracted before) outside ``dest``, and clears setuid/setgid and
    group/other write bits; executables stay executable. Symlinks may point
    anywhere: they are followed inside the container, never by the host,
    whose realpath checks stop any later member from going through them.
    """
    if member.isdev():
        return None  # device nodes and fifos: not files an image volume shows
    filtered = tarfile.tar_filter(member, dest)
    if filtered.islnk():
        target = os.path.realpath(os.path.join(dest, filtered.linkname))
        if not _inside(os.path.realpath(dest), target):
            raise tarfile.LinkOutsideDestinationError(filtered, target)
    return filtered


def extract_tar(chunks: Iterable[bytes], dest: str) -> None:
    """Extract a tar stream into the existing directory ``dest``, refusing what escapes it.

    Owners are kept as numbers (the image's, not this host's names).
    """
    dest = os.path.realpath(dest)
    with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks)), mode="r|") as tar:
        # every member goes through _member_filter first
        tar.extractall(dest, numeric_owner=True, filter=_member_filter)  # noqa: S202


def reported_mounts(labels: Mapping[str, str], binds: list[cri.Mount]) -> list[cri.Mount]:
    """Docker's bind mounts, with the image mounts reported as requested."""
    images = decode_image_mounts(labels.get(IMAGE_MOUNTS, ""))
    return [images.get(m.container_path, m) for m in binds]


class ImageVolumes:
    """The exported image trees of one Docker shim."""

    def __init__(self, connection: DockerConnection, state_dir: str) -> None:
        self._conn = connection
        self.root = os.path.join(state_dir, "image-volumes")

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return locked_directory(self.root)

    def tree(self, image_ref: str) -> str:
        return os.path.join(self.root, _hex(image_ref))

    def prepare(
        self, config: cri.ContainerConfig, mounts: list[ImageMount]
    ) -> tuple[cri.ContainerConfig, dict[str, str]]:
        """The config with image mounts as binds, and the labels recording them.

        Call under :meth:`locked`, and create the container before leaving it,
        so that no prune runs between the export and the container's labels.
        """
        sources: list[tuple[ImageMount, str]] = []
        labels = {IMAGE_MOUNTS: encode_image_mounts(mounts)}
        for mount in mounts:
            tree = self._export(mount.image_ref)
            where = f"config.mounts[{mount.index}]"
            sources.append((mount, sub_path_source(tree, mount.sub_path, where)))
            labels[user_label(mount.image_ref)] = "1"
        return with_host_paths(config, sources), labels

    def _export(self, image_ref: str) -> str:
        tree = self.tree(image_ref)
        if os.path.isdir(tree):
            return tree
        work = f"{tree}{_TMP}{uuid.uuid4().hex[:8]}"
        os.makedirs(work, mode=0o755)
        api = self._conn.api
        what = f"exporting image {image_ref[:19]} for an image volume"
        try:
            with self._conn.errors(what):
                helper = api.create_container(
                    image_ref,
                    entrypoint=["/pycri-image-volume-export"],  # never started
                    network_disabled=True,
                    labels={_EXPORT_LABEL: "1"},
                )["Id"]
            try:
                with self._conn.errors(what):
                    extract_tar(api.export(helper), work)
            finally:
                with self._conn.errors(f"removing the export helper {helper[:13]}"):
                    api.remove_container(helper, v=True, force=True)
            os.chmod(work, 0o755)  # noqa: S103 - containers of any user read the image
            os.rename(work, tree)
        except tarfile.TarError as err:
            raise InternalError(f"{what}: unsafe or broken archive: {err}") from None
        finally:
            if os.path.exists(work):
                shutil.rmtree(work, ignore_errors=True)
        return tree

    def prune(self) -> None:
        """Delete every tree no pycri container uses any more (and export leftovers).

        An empty root has nothing to delete and costs no Docker call (the two
        lists below walk every container): an export makes its ``.tmp-`` dir
        before its helper container and removes the helper before that dir,
        so no helper outlives the dir, not even one of a killed server.
        """
        if not os.path.isdir(self.root) or not os.listdir(self.root):
            return
        with self.locked():
            self.prune_locked()

    def prune_locked(self) -> None:
        """:meth:`prune` for a caller already holding :meth:`locked`."""
        api = self._conn.api
        with self._conn.errors("listing containers that use image volumes"):
            entries: list[Mapping[str, Any]] = api.containers(
                all=True, filters={"label": [f"{KIND_LABEL}={CONTAINER_KIND}"]}
            )
            helpers: list[Mapping[str, Any]] = api.containers(
                all=True, filters={"label": [_EXPORT_LABEL]}
            )
        used = {
            key.removeprefix(PYCRI_PREFIX + _USER_PREFIX)
            for entry in entries
            for key in entry.get("Labels") or {}
            if key.startswith(PYCRI_PREFIX + _USER_PREFIX)
        }
        for name in os.listdir(self.root):
            if _TMP in name or name not in used:
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
        for helper in helpers:  # left by a server killed mid-export
            with self._conn.errors("removing an export helper"):
                api.remove_container(helper["Id"], v=True, force=True)

    def leftovers(self) -> list[str]:
        """Trees and export helpers that exist now (for tests: none once no container uses one)."""
        trees = sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []
        with self._conn.errors("listing export helpers"):
            helpers = self._conn.api.containers(all=True, filters={"label": [_EXPORT_LABEL]})
        return [*(f"tree {name}" for name in trees), *(f"helper {h['Id'][:13]}" for h in helpers)]
