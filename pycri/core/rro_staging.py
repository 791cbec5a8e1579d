"""Recursive read-only mounts for engines that cannot make them (runc 1.1, Docker 20.10).

pycri stages each such mount itself: a recursive clone of the host path
(``open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)``), made read-only and private
as a whole (``mount_setattr(AT_RECURSIVE)``, Linux >= 5.12), attached at
``<root>/<engine name>/<mount index>``. The engine gets that path as an
ordinary read-only bind: a recursive bind copies each submount's read-only
flag, so every level is read-only in the container.

The staging lives from CreateContainer until the container has started
(runc made the container's own copy then) or is removed, whichever comes
first: while it is attached the host cannot remove a directory it covers
(critest removes its host path while the container runs). Staging dirs are
named by the engine's container name, so a restarted server finds what
is whose; :meth:`RROStaging.sweep` releases those no created container
owns. A shared flock on ``<root>`` during staging + engine create keeps a
sweep (exclusive) of another server from taking a staging in flight.
Stagings are private mounts; when ``<root>`` sits on a shared mount it is
first made a private mount point of its own, or they would be shared with
(and copied into) every peer mount namespace.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import platform
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.core.linux import locked_directory
from pycri.errors import AlreadyExistsError, FailedPreconditionError

__all__ = [
    "STAGED_LABEL",
    "RROStaging",
    "make_private_mount_point",
    "mount_setattr_available",
    "restore_mounts",
    "staged_label",
    "staging_key",
    "with_mounts",
]

log = logging.getLogger(__name__)

# syscall numbers are the same on x86_64 and aarch64 (the unified table, since 5.2)
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_RDONLY = 0x1
_MS_PRIVATE = 1 << 18
_MS_BIND = 4096
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8
_ARCHES = ("x86_64", "aarch64")


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


def _readonly_clone(path: str) -> int:
    """A detached, recursively read-only and private clone of the tree at ``path``."""
    fd = _check(
        _libc.syscall(
            _SYS_OPEN_TREE,
            _AT_FDCWD,
            os.fsencode(path),
            _OPEN_TREE_CLONE | os.O_CLOEXEC | _AT_RECURSIVE,
        ),
        f"open_tree({path})",
    )
    try:
        attr = _MountAttr(attr_set=_MOUNT_ATTR_RDONLY, propagation=_MS_PRIVATE)
        _check(
            _libc.syscall(
                _SYS_MOUNT_SETATTR,
                fd,
                b"",
                _AT_EMPTY_PATH | _AT_RECURSIVE,
                ctypes.byref(attr),
                ctypes.sizeof(attr),
            ),
            f"mount_setattr({path})",
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _attach(fd: int, target: str) -> None:
    _check(
        _libc.syscall(
            _SYS_MOVE_MOUNT, fd, b"", _AT_FDCWD, os.fsencode(target), _MOVE_MOUNT_F_EMPTY_PATH
        ),
        f"move_mount({target})",
    )


def _detach(target: str) -> None:
    """Unmount the staged tree at ``target`` (all of it); nothing mounted is fine."""
    if _libc.umount2(os.fsencode(target), _MNT_DETACH | _UMOUNT_NOFOLLOW) < 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point
            raise OSError(code, f"umount2({target}): {os.strerror(code)}")


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _mount_holding(path: str, mountinfo: str = "/proc/self/mountinfo") -> tuple[str, bool]:
    """The mount point of the (top) mount ``path`` is on, and whether it is shared."""
    best, shared = "/", False
    for line in Path(mountinfo).read_text().splitlines():
        fields = line.split(" ")
        point = _unescape(fields[4])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # later entries are stacked on top
            tags = fields[6 : fields.index("-")]
            best, shared = point, any(tag.startswith("shared:") for tag in tags)
    return best, shared


def make_private_mount_point(path: str) -> None:
    """Make ``path`` a private mount point if the mount it is on is shared.

    A mount attached under a shared mount joins its peer group, so a
    staging would otherwise show up in the mount namespaces of every peer
    (a systemd host's ``/`` is shared). The self-bind stays, as iproute2's
    of /run/netns does: it holds no data.
    """
    real = os.path.realpath(path)
    point, shared = _mount_holding(real)
    if not shared:
        return
    if point != real:
        _check(_libc.mount(os.fsencode(real), os.fsencode(real), None, _MS_BIND, None), "bind")
    _check(_libc.mount(None, os.fsencode(real), None, _MS_PRIVATE, None), "make-private")


def mount_setattr_available(probe_dir: str) -> str | None:
    """None when a recursive read-only clone can be made here; otherwise why not.

    The probe clones ``probe_dir`` and makes the clone read-only, which needs
    the syscalls (Linux >= 5.12) and CAP_SYS_ADMIN; the detached clone goes
    away with its file descriptor, so nothing is left mounted.
    """
    if platform.machine() not in _ARCHES:
        return f"mount_setattr's syscall number is not known on {platform.machine()}"
    try:
        os.makedirs(probe_dir, mode=0o700, exist_ok=True)
        os.close(_readonly_clone(probe_dir))
    except OSError as err:
        return str(err)
    return None


_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


def staging_key(name: str) -> str:
    """The staging directory's name for engine container ``name``.

    The name itself when it makes a short plain file name; Docker names can
    be longer than a file name may be (a Kubernetes pod name alone takes up
    to 253 characters), so others are a readable prefix and a hash.
    """
    if _PLAIN_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name[:80])}-{digest}"


class RROStaging:
    """The staged recursive read-only mounts of one shim instance, under ``root``."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self._problem: str | None = None
        self._probed = False
        self._root_private = False

    def supported(self) -> bool:
        """Whether this host and process can stage (probed once)."""
        if not self._probed:
            self._problem = mount_setattr_available(str(self.root))
            self._probed = True
            if self._problem:
                log.info("recursive read-only mounts are not available: %s", self._problem)
        return self._problem is None

    def _dir(self, name: str) -> Path:
        return self.root / staging_key(name)

    @contextmanager
    def creating(self, name: str, mounts: Sequence[cri.Mount]) -> Iterator[list[cri.Mount]]:
        """Stage the recursive read-only ``mounts`` of container ``name`` for its create.

        Yields the mounts to give the engine (staged ones point at their
        staging path, plainly read-only); when the body raises, the staging
        is undone. Without recursive read-only mounts nothing is done.
        """
        if not any(m.recursive_read_only for m in mounts):
            yield list(mounts)
            return
        if not self.supported():
            raise FailedPreconditionError(
                f"recursive read-only mounts are not available here: {self._problem}"
            )
        base = self._dir(name)
        if not self._root_private:
            with locked_directory(self.root):
                make_private_mount_point(str(self.root))
            self._root_private = True
        with locked_directory(self.root, fcntl.LOCK_SH):
            try:
                base.mkdir(mode=0o700)
            except FileExistsError:
                # the engine refuses the name anyway; the staging is another container's
                raise AlreadyExistsError(
                    f"container {name} already has staged recursive read-only mounts"
                ) from None
            try:
                yield self._stage(base, mounts)
            except BaseException:
                self.release_quietly(name)
                raise

    def _stage(self, base: Path, mounts: Sequence[cri.Mount]) -> list[cri.Mount]:
        out: list[cri.Mount] = []
        for index, mount in enumerate(mounts):
            if not mount.recursive_read_only:
                out.append(mount)
                continue
            target = base / str(index)
            try:
                # a missing host path becomes a directory, as for every other bind
                if not os.path.lexists(mount.host_path):
                    os.makedirs(mount.host_path, mode=0o755, exist_ok=True)
                if os.path.isdir(mount.host_path):
                    target.mkdir(mode=0o755)
                else:
                    target.touch(mode=0o644)
                fd = _readonly_clone(mount.host_path)
            except OSError as err:
                raise FailedPreconditionError(
                    f"cannot stage the recursive read-only mount of {mount.host_path!r}: {err}"
                ) from err
            try:
                _attach(fd, str(target))
            finally:
                os.close(fd)
            staged = cri.Mount()
            staged.CopyFrom(mount)
            staged.host_path = str(target)
            staged.recursive_read_only = False  # for the engine: a plain read-only bind
            out.append(staged)
        return out

    def staged(self) -> list[str]:
        """The staging dirs there are (:func:`staging_key` of their containers' names)."""
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def release(self, name: str) -> None:
        """Unmount and remove the staging of container ``name`` (absent: nothing to do)."""
        self._release(self._dir(name))

    def release_quietly(self, name: str) -> None:
        """:meth:`release`, logging a failure: the RPC it ends has done its work."""
        try:
            self.release(name)
        except OSError as err:
            log.warning("cannot release the staged mounts of %s (swept at restart): %s", name, err)

    def _release(self, base: Path) -> None:
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return
        # another server's sweep may release the same staging at the same time
        with suppress(FileNotFoundError):
            for entry in entries:
                _detach(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    os.rmdir(entry.path)
                else:
                    os.unlink(entry.path)
            os.rmdir(base)

    def sweep(self, owners: Callable[[], set[str]]) -> list[str]:
        """Release every staging whose container is not in ``owners()`` (names of created ones).

        ``owners`` is asked with the exclusive lock held, so stagings whose
        engine create is in flight are either visible there or not yet made.
        """
        if not self.staged():
            return []
        with locked_directory(self.root):
            keep = {staging_key(name) for name in owners()}
            gone = [key for key in self.staged() if key not in keep]
            for key in gone:
                self._release(self.root / key)
        if gone:
            log.info("released %d orphaned recursive read-only staging(s): %s", len(gone), gone)
        return gone


#: the engine label (``io.pycri.<key>``) mapping staging paths back to the requested mounts
STAGED_LABEL = "rro-staged"


def staged_label(requested: Sequence[cri.Mount], given: Sequence[cri.Mount]) -> str:
    """JSON {staging path: requested host path} of the staged mounts ("" when none)."""
    pairs = {
        g.host_path: r.host_path
        for r, g in zip(requested, given, strict=True)
        if r.recursive_read_only
    }
    return json.dumps(pairs, separators=(",", ":")) if pairs else ""


def restore_mounts(mounts: Sequence[cri.Mount], label: str) -> list[cri.Mount]:
    """The engine's view of the mounts with staged ones reported as requested."""
    staged: dict[str, str] = json.loads(label) if label else {}
    out = []
    for mount in mounts:
        if mount.host_path in staged:
            mount.host_path = staged[mount.host_path]
            mount.recursive_read_only = True
        out.append(mount)
    return out


def with_mounts(config: cri.ContainerConfig, mounts: Sequence[cri.Mount]) -> cri.ContainerConfig:
    """``config`` with the mounts the engine is to get (itself when they are the same)."""
    if list(config.mounts) == list(mounts):
        return config
    engine_config = cri.ContainerConfig()
    engine_config.CopyFrom(config)
    del engine_config.mounts[:]
    engine_config.mounts.extend(mounts)
    return engine_config
