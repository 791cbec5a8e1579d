"""A container's in-memory filesystem, as the fake's processes see it."""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Mapping, Sequence
from typing import ClassVar

__all__ = ["FakeFS", "ReadOnlyFileSystem"]


class ReadOnlyFileSystem(Exception):
    """A write under a read-only mount (EROFS)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class FakeFS:
    """A container's in-memory filesystem: files only, directories implied.

    Paths under ``read_only`` (image volumes) refuse every change.
    """

    BASE_DIRS: ClassVar[frozenset[str]] = frozenset(
        {"/", "/bin", "/dev", "/etc", "/home", "/proc", "/root", "/sys", "/tmp", "/usr", "/var"}
    )

    def __init__(
        self,
        files: Mapping[str, bytes] | None = None,
        dirs: Sequence[str] = (),
        read_only: Sequence[str] = (),
    ) -> None:
        self._read_only = tuple(posixpath.normpath(p) for p in read_only)
        self._lock = threading.Lock()
        self._files: dict[str, bytes] = dict(files or {})
        self._dirs = set(self.BASE_DIRS) | {posixpath.normpath(d) for d in dirs}
        self._base = set(self._files)
        self.written_bytes = 0

    def read(self, path: str) -> bytes | None:
        with self._lock:
            return self._files.get(path)

    def _check_writable(self, path: str) -> None:
        for root in self._read_only:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                raise ReadOnlyFileSystem(path)

    def write(self, path: str, data: bytes, append: bool = False) -> None:
        self._check_writable(path)
        with self._lock:
            old = self._files.get(path, b"") if append else b""
            self._files[path] = old + data
            self.written_bytes += len(data)

    def remove(self, path: str) -> bool:
        if path in self._files:
            self._check_writable(path)
        with self._lock:
            return self._files.pop(path, None) is not None

    def mkdir(self, path: str) -> None:
        if not self.is_dir(path):
            self._check_writable(path)
        with self._lock:
            self._dirs.add(path)

    def is_file(self, path: str) -> bool:
        with self._lock:
            return path in self._files

    def is_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        with self._lock:
            return path in self._dirs or any(f.startswith(prefix) for f in self._files)

    def user_files(self) -> dict[str, int]:
        """Files written by processes (not the runtime's own): path -> size."""
        with self._lock:
            return {p: len(d) for p, d in self._files.items() if p not in self._base}
