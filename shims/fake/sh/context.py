"""Where a simulated process runs (:class:`ProcessContext`) and its streams (:class:`IO`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pycri_shims.fake.sh.filesystem import FakeFS
from pycri_shims.fake.stdio import Stdin, Terminal

if TYPE_CHECKING:
    from pycri_shims.fake.network import FakeNetwork

__all__ = ["IO", "ProcessContext", "Writer"]

Writer = Callable[[bytes], None]


@dataclass
class ProcessContext:
    """Where a process runs: its container's environment, identity and files."""

    env: dict[str, str] = field(default_factory=dict)
    hostname: str = "localhost"
    working_dir: str = "/"
    fs: FakeFS = field(default_factory=FakeFS)
    pid: int = 1
    ip: str = ""
    uid: int = 0
    gid: int = 0
    #: supplementary groups (the kernel keeps them sorted)
    groups: tuple[int, ...] = (0,)
    #: the pod's network namespace (ports simulated servers listen on)
    net: FakeNetwork | None = None
    #: the process's pseudo-terminal, when it has one
    terminal: Terminal | None = None

    def for_exec(self, pid: int, terminal: Terminal | None = None) -> ProcessContext:
        """The same container context for another process (shared fs and network)."""
        return dataclasses.replace(self, env=dict(self.env), pid=pid, terminal=terminal)


@dataclass
class IO:
    """A command's streams. ``stdin`` None is an open stdin that never sends data;
    a :class:`Stdin` is a live one (an interactive exec, an attached container)."""

    out: Writer
    err: Writer
    stdin: bytes | Stdin | None = b""
