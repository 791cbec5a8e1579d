"""Volumes on the node: emptyDir directories under the pod's dir, hostPath checks.

An emptyDir is a plain directory, mode 0777 like the kubelet's, bind-mounted
into every container that names it (so containers of a pod share it) and
removed with the pod. hostPath volumes are checked against their ``type``.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

from pycri.kubelet.model.spec import Pod, Volume
from pycri.kubelet.sync.paths import KubeletPaths

__all__ = ["VolumeError", "prepare_volumes", "remove_pod_dirs"]

log = logging.getLogger(__name__)

_KIND_CHECKS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


class VolumeError(Exception):
    """A volume cannot be set up (the pod waits, as with the kubelet's FailedMount)."""


def _host_path(volume: Volume) -> None:
    path = Path(volume.host_path)
    kind = volume.host_path_type
    if kind == "DirectoryOrCreate":
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        return
    if kind == "FileOrCreate":
        if not path.exists():
            if not path.parent.is_dir():
                raise VolumeError(f"hostPath {path}: parent directory does not exist")
            path.touch(mode=0o644)
        kind = "File"
    if not kind:
        return
    check, what = _KIND_CHECKS[kind]
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise VolumeError(f"hostPath type check failed: {path} does not exist") from None
    if not check(mode):
        raise VolumeError(f"hostPath type check failed: {path} is not {what}")


def prepare_volumes(pod: Pod, paths: KubeletPaths) -> None:
    """Create emptyDirs (and subPath directories), check hostPaths; VolumeError if not."""
    fs_group = pod.spec.security_context.fs_group
    for volume in pod.spec.volumes:
        try:
            if volume.kind == "hostPath":
                _host_path(volume)
                continue
            directory = paths.empty_dir(pod.uid, volume.name)
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
                directory.chmod(0o777)  # the umask must not narrow it: any uid may write
                if fs_group is not None:
                    os.chown(directory, -1, fs_group)
        except OSError as err:
            raise VolumeError(f"volume {volume.name!r}: {err}") from None
    for container in pod.spec.all_containers():
        for mount in container.volume_mounts:
            named = pod.spec.volume(mount.name)
            if not mount.sub_path or named is None:
                continue
            volume = named
            base = (
                Path(volume.host_path)
                if volume.kind == "hostPath"
                else (paths.empty_dir(pod.uid, volume.name))
            )
            try:
                target = base / mount.sub_path
                if not target.exists():
                    target.mkdir(parents=True)
                    target.chmod(0o777 if volume.kind == "emptyDir" else 0o755)
            except OSError as err:
                raise VolumeError(f"subPath {mount.sub_path!r} of {mount.name!r}: {err}") from None


def remove_pod_dirs(paths: KubeletPaths, uid: str, log_dir: Path | None) -> None:
    """Remove the pod's directory (its emptyDirs, its state) and its log directory."""
    for directory in (paths.pod_dir(uid), log_dir):
        if directory is None or not directory.exists():
            continue
        try:
            shutil.rmtree(directory)
        except OSError as err:  # e.g. a file a container made read-only: log, keep going
            log.warning("could not remove %s: %s", directory, err)
