"""A host directory with a filesystem mounted under it, for recursive read-only mount tests.

The tmpfs gets a source name of its own, so every copy of it in this mount
namespace (a staging of pycri's, say) can be counted in /proc/self/mountinfo
without knowing where it is.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TreeWithSubmount", "mount_sources", "tree_with_submount"]


def mount_sources(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """The source field of every mount in this mount namespace."""
    sources = []
    for line in Path(mountinfo).read_text().splitlines():
        _, _, after = line.partition(" - ")
        fields = after.split(" ")
        if len(fields) >= 2:
            sources.append(fields[1])
    return sources


@dataclass(frozen=True)
class TreeWithSubmount:
    #: the host directory; ``path / "sub"`` is a tmpfs
    path: Path
    source: str

    @property
    def sub(self) -> Path:
        return self.path / "sub"

    def copies(self) -> int:
        """Mounts of the tmpfs in this namespace beyond the original."""
        return mount_sources().count(self.source) - 1


@contextmanager
def tree_with_submount(path: Path) -> Iterator[TreeWithSubmount]:
    """``path`` with a small tmpfs at ``path/sub`` (needs root); unmounted afterwards."""
    tree = TreeWithSubmount(path, f"pycri-submount-{uuid.uuid4().hex[:12]}")
    tree.sub.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", tree.source, str(tree.sub)],
        check=True,
        capture_output=True,
    )
    try:
        yield tree
    finally:
        subprocess.run(["umount", "-l", str(tree.sub)], check=False, capture_output=True)
