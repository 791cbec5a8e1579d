"""Facts about the host that engine shims need to build containers that really start."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CAPABILITY_NAMES",
    "VANISHED_ERRNOS",
    "bounding_capabilities",
    "locked_directory",
    "read_if_present",
]

#: what reading a file of something that has just ended answers: ENOENT/ENOTDIR
#: (path removed), ESRCH (/proc file of a process that exited after the open),
#: ENODEV (file of a cgroup removed after the open, which the kernel allows)
VANISHED_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ESRCH, errno.ENODEV})

# Index = capability number (linux/capability.h).
CAPABILITY_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip


def bounding_capabilities(status_file: str = "/proc/self/status") -> list[str]:
    """The capabilities this process may grant (its bounding set), by name.

    A "privileged" container asks for every capability; on hosts whose
    bounding set lacks some (seen: CAP_SYS_RESOURCE in some VMs) the engine
    then fails with "unable to apply caps", so shims grant exactly these.
    """
    for line in Path(status_file).read_text().splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return [name for bit, name in enumerate(CAPABILITY_NAMES) if mask >> bit & 1]
    return []


def read_if_present(path: Path) -> str | None:
    """The text of a /proc or cgroup file; None when what it describes is gone.

    Containers and processes end at any moment, also while one of their
    files is read: that is an answer ("gone"), not an error. Anything else
    (EIO, ...) still raises.
    """
    try:
        return path.read_text()
    except OSError as err:
        if err.errno in VANISHED_ERRNOS:
            return None
        raise


@contextmanager
def locked_directory(path: str | Path, operation: int = fcntl.LOCK_EX) -> Iterator[None]:
    """Hold an flock on the directory ``path`` itself (made root's alone if missing).

    Servers sharing a state directory order their changes to it with this,
    between threads (each call opens its own descriptor) and processes;
    closing the descriptor releases the lock.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)
