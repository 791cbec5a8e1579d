"""The CRI log of every container: nerdctl's json log copied while the container runs.

One :class:`~pycri.core.logcopy.LogCopier` per container reads the file
nerdctl's logging driver writes (logsource.py); no process is involved.
The copiers sleep until their file changes or their container exits: one
:class:`~pycri.core.wakeups.Wakeups` thread of the shim wakes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pycri.core.logcopy import LogCopiers
from pycri.core.wakeups import Wakeups, Watch
from pycri_shims.nerdctl import convert
from pycri_shims.nerdctl.host import Cgroups, RuncState
from pycri_shims.nerdctl.logsource import json_log_source
from pycri_shims.nerdctl.options import NerdctlOptions

__all__ = ["LOG_DRAIN_TIMEOUT", "LOG_FLUSH", "LogFollowers"]

#: how long RemoveContainer lets a copier write the container's last lines
LOG_DRAIN_TIMEOUT = 2.0
#: seconds after a container's exit by which nerdctl's logger has written its output
LOG_FLUSH = 0.25


@dataclass(frozen=True)
class _Signals:
    """What a copier's follower waits on: ``wake`` (its file changed or its
    container exited, from :class:`Wakeups`) and ``done`` (read to the end, stop)."""

    done: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)

    def finish(self) -> None:
        self.done.set()
        self.wake.set()  # a sleeping follower sees ``done`` at once


class LogFollowers:
    """Log copiers by container id, each with the signals that tell it to finish."""

    def __init__(self, options: NerdctlOptions, cgroups: Cgroups) -> None:
        self.options = options
        self.cgroups = cgroups
        self.copiers = LogCopiers()
        self.wakeups = Wakeups()
        self._signals: dict[str, _Signals] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for signals in self._signals.values():
                signals.finish()  # copiers read to the end of their files and stop
        self.copiers.stop_all()
        self.wakeups.close()

    def attach(self, container_id: str, labels: Mapping[str, str]) -> None:
        """Start copying the container's json log into its CRI log file (joined labels)."""
        meta = convert.decoded({"Labels": labels})
        state_dir = labels.get("nerdctl/state-dir", "")
        if not meta.log_path or not state_dir:
            return
        engine_log = f"{state_dir}/{container_id}-json.log"
        with self._lock:
            signals = self._signals.setdefault(container_id, _Signals())
        alive = self.alive_check(container_id, meta.extra.get("cgroup-parent", ""))

        def watch() -> Watch:  # opened by the follower as it starts
            state = RuncState.load(self.options.runc_root, self.options.namespace, container_id)
            if state is None:
                return self.wakeups.watch(signals.wake, state_dir)
            return self.wakeups.watch(signals.wake, state_dir, state.init_pid, state.alive)

        source = json_log_source(engine_log, alive, signals.done, watch=watch)
        self.copiers.ensure(container_id, meta.log_path, source)

    def complete(self, container_id: str, labels: Mapping[str, str], finished_ns: int) -> None:
        """Once a container has exited, its CRI log holds all it wrote: the kubelet
        and critest read it as soon as the status says EXITED."""
        with self._lock:
            signals = self._signals.get(container_id)
        if signals is None:  # exited before its copier started, or before a restart
            self.attach(container_id, labels)
            with self._lock:
                signals = self._signals.get(container_id)
        if signals is None:
            return  # no CRI log to write
        if not signals.done.is_set():
            # nerdctl's logger outlives the container (until its task is deleted), so
            # only time says it has written the last output: give it LOG_FLUSH
            age = time.time() - finished_ns / 1e9 if finished_ns else 0.0
            if age < LOG_FLUSH:
                time.sleep(LOG_FLUSH - max(age, 0.0))
            signals.finish()  # the copier reads to the end of the file and stops
        self.copiers.wait(container_id, LOG_DRAIN_TIMEOUT)

    def forget(self, container_id: str) -> None:
        """The container is gone: let its copier write what is left, then forget it."""
        with self._lock:
            signals = self._signals.pop(container_id, None)
        if signals is not None:
            signals.finish()
        self.copiers.finish(container_id, LOG_DRAIN_TIMEOUT if signals is not None else 0)

    def reopen(self, container_id: str) -> bool:
        """ReopenContainerLog on a live copier; False when there is none."""
        return self.copiers.reopen(container_id)

    def alive_check(self, container_id: str, cgroup_parent: str) -> Callable[[], bool]:
        """Whether the container's init still runs, from files (no nerdctl process)."""
        runc_root, namespace, cgroups = self.options.runc_root, self.options.namespace, self.cgroups
        # a task's init process is its own for life: runc's state.json (kilobytes of
        # JSON) is read until found, then each check reads only /proc/<pid>/stat
        known: list[RuncState] = []

        def alive() -> bool:
            if not known:
                state = RuncState.load(runc_root, namespace, container_id)
                if state is None:
                    # no runc state (not started, another OCI runtime?): any process
                    # left in its cgroup
                    return bool(cgroups.procs(container_id, cgroup_parent))
                known.append(state)
            return known[0].alive()

        return alive
