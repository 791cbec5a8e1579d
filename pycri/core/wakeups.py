"""Wake waiting threads when a directory's files change or a process exits.

A log follower that polls its file wakes several times a second even
while its container is quiet: 220 containers cost an idle server about a
tenth of a CPU and stretch every RPC's tail waiting for the GIL. One
thread here instead waits on inotify (a write, create or rename in a
watched directory) and on pidfds (a process's exit) and sets the
:class:`threading.Event` of each waiter concerned, so a quiet container
costs nothing and a new line is read at once.

Linux only (inotify since 2.6.13, ``pidfd_open`` since 5.3). Where either
is missing, or a watch cannot be added (``fs.inotify.max_user_watches``),
:meth:`Wakeups.watch` says so and the caller keeps polling. An inotify
queue overflow wakes every waiter: each then reads what it missed.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable

__all__ = ["Wakeups", "Watch"]

log = logging.getLogger(__name__)

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_MODIFY = 0x00000002
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000  # the watch is gone (its directory was removed)
_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
#: seconds between two rounds of wakeups: what a new line may wait at most
_GATHER = 0.01
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


class _Inotify:
    """An inotify descriptor with libc's calls to add and remove watches."""

    def __init__(self, fd: int, libc: ctypes.CDLL) -> None:
        self.fd = fd
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._add.restype = ctypes.c_int
        self._remove = libc.inotify_rm_watch
        self._remove.argtypes, self._remove.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int

    @classmethod
    def open(cls) -> _Inotify | None:
        """None where inotify is unavailable (logged)."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
        except (OSError, AttributeError) as err:
            log.warning("no inotify (%s): log followers poll", err)
            return None
        if fd < 0:
            log.warning("no inotify (%s): log followers poll", os.strerror(ctypes.get_errno()))
            return None
        return cls(fd, libc)

    def add(self, directory: str) -> int:
        """The watch descriptor, or -errno."""
        wd = int(self._add(self.fd, os.fsencode(directory), _MASK))
        return wd if wd >= 0 else -ctypes.get_errno()

    def remove(self, wd: int) -> None:
        self._remove(self.fd, wd)  # fails harmlessly once the kernel dropped it


def _readable(fd: int) -> bool:
    probe = select.poll()  # not select(): descriptors past 1023 are common here
    probe.register(fd, select.POLLIN)
    return bool(probe.poll(0))


class Watch:
    """One waiter's watches: its directory, and the process whose exit it waits for."""

    def __init__(self, owner: Wakeups, event: threading.Event) -> None:
        self._owner = owner
        self.event = event
        self.directory = False  # a change in the directory sets ``event``
        self.exit = False  # the process's exit sets ``event``
        self._wd: int | None = None
        self._pidfd: int | None = None

    def close(self) -> None:
        """Stop watching (idempotent): once this returns, the watcher leaves the
        event alone; its state is left as it is."""
        self._owner._drop(self)


class Wakeups:
    """The one thread that sets waiters' events; thread safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_wd: dict[int, set[Watch]] = {}
        self._by_pidfd: dict[int, Watch] = {}
        self._epoll = select.epoll()
        self._closing = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._epoll.register(self._closing, select.EPOLLIN)
        self._closed = False
        self._inotify = _Inotify.open()
        if self._inotify is not None:
            self._epoll.register(self._inotify.fd, select.EPOLLIN)
        self._thread = threading.Thread(target=self._run, name="pycri-wakeups", daemon=True)
        self._thread.start()

    def watch(
        self,
        event: threading.Event,
        directory: str,
        pid: int | None = None,
        still_ours: Callable[[], bool] | None = None,
    ) -> Watch:
        """Set ``event`` when a file in ``directory`` changes and, with ``pid``, when
        that process exits. ``still_ours`` is asked once the pidfd is open: False (the
        pid was already reused) sets the event at once. The returned watch says which
        of the two took; close it when done."""
        watch = Watch(self, event)
        with self._lock:
            if self._closed:
                return watch
            if self._inotify is not None:
                wd = self._inotify.add(directory)
                if wd >= 0:
                    watch._wd, watch.directory = wd, True
                    self._by_wd.setdefault(wd, set()).add(watch)
                elif wd != -errno.ENOENT:
                    log.warning("cannot watch %s: %s", directory, os.strerror(-wd))
            if pid is not None:
                self._watch_exit(watch, pid, still_ours)
        return watch

    def _watch_exit(self, watch: Watch, pid: int, still_ours: Callable[[], bool] | None) -> None:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            watch.exit = True  # already gone: the waiter finds it dead
            watch.event.set()
            return
        except OSError as err:  # ENOSYS before Linux 5.3, EMFILE
            log.warning("cannot watch process %d: %s", pid, err)
            return
        try:
            self._epoll.register(pidfd, select.EPOLLIN)
        except OSError as err:  # ENOSPC: fs.epoll.max_user_watches
            os.close(pidfd)
            log.warning("cannot watch process %d: %s", pid, err)
            return
        watch._pidfd, watch.exit = pidfd, True
        self._by_pidfd[pidfd] = watch
        if still_ours is not None and not still_ours():
            watch.event.set()  # the pid was reused before the pidfd was opened

    def _drop(self, watch: Watch) -> None:
        with self._lock:
            wd, watch._wd = watch._wd, None
            if wd is not None:
                waiters = self._by_wd.get(wd)
                if waiters is not None:
                    waiters.discard(watch)
                    if not waiters:
                        del self._by_wd[wd]
                        if self._inotify is not None:
                            self._inotify.remove(wd)
            self._drop_pidfd(watch)

    def _drop_pidfd(self, watch: Watch) -> None:
        pidfd, watch._pidfd = watch._pidfd, None
        if pidfd is not None:
            self._by_pidfd.pop(pidfd, None)
            self._epoll.unregister(pidfd)
            os.close(pidfd)

    def close(self) -> None:
        """Stop the thread and close every descriptor; waiters keep their events."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        os.eventfd_write(self._closing, 1)
        self._thread.join()
        with self._lock:
            for watch in list(self._by_pidfd.values()):
                self._drop_pidfd(watch)
            self._by_wd.clear()
            if self._inotify is not None:
                os.close(self._inotify.fd)
            os.close(self._closing)
            self._epoll.close()

    def _run(self) -> None:
        while True:
            ready = self._epoll.poll()
            for fd, _ in ready:
                if fd == self._closing:
                    return
                with self._lock:
                    if self._inotify is not None and fd == self._inotify.fd:
                        woken = self._inotify_events(self._inotify.fd)
                    else:
                        watch = self._by_pidfd.get(fd)
                        # the number may have been closed and reused since poll() said
                        # ready: only a pidfd still readable is an exit
                        if watch is None or not _readable(fd):
                            continue
                        woken = [watch]
                        self._drop_pidfd(watch)  # an exit happens once
                    for watch in woken:  # under the lock: a closed watch is never set
                        watch.event.set()
            # a container writing fast makes one event per write: let them gather (the
            # kernel merges repeats) rather than wake for each and take the GIL from
            # the follower copying them (60 000 lines took it past its 2 s drain)
            time.sleep(_GATHER)

    def _inotify_events(self, fd: int) -> list[Watch]:
        """The waiters the queued inotify events concern (lock held)."""
        woken: list[Watch] = []
        while True:
            try:
                data = os.read(fd, 64 * 1024)
            except BlockingIOError:
                return woken
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    woken += [w for waiters in self._by_wd.values() for w in waiters]
                    continue
                waiters = self._by_wd.get(wd, set())
                woken += waiters
                if mask & _IN_IGNORED:  # the kernel dropped the watch
                    for watch in self._by_wd.pop(wd, set()):
                        watch._wd, watch.directory = None, False
