"""The namespace's containers in memory, fed by containerd's event stream.

A cache, never the record: :class:`ContainerView` is rebuilt from ``nerdctl
ps -a`` when it starts and whenever its ``nerdctl events`` process ends
(containerd stopped: its socket gone; the process killed), and the shim falls back to its
subprocess path whenever :meth:`ContainerView.rows` answers ``None`` (not
fresh: the stream is down or the view is being rebuilt).

How it stays right:

* **Nothing is missed at (re)start.** The stream runs first; a label update
  on the namespace (``nerdctl namespace update --label``) is the probe whose
  event proves the subscription is live; only then is ``ps`` taken, and the
  events that came while it ran are replayed over it, in order. Every state
  change emits an event, so the last one replayed for a container is its
  latest state.
* **The shim's own changes are seen by the very next List.** A mutation
  waits (:meth:`ContainerView.await_state`, bounded) until the stream has
  brought the event of its effect; if that does not come in time the view
  marks itself stale and is rebuilt, lists meanwhile taking the subprocess
  path. ``create``/``run`` print only the id: the shim hands its labels to
  the view (:meth:`ContainerView.claim`), since containerd's create event
  carries none.
* **Changes behind pycri's back** (``nerdctl rm -f``, a kill, an exit) come
  as events within milliseconds. A container created behind its back is
  listed once one ``container inspect`` has read its labels (after
  :data:`FILL_GRACE`, in which its creator, if the shim, claims it).

* **GetContainerEvents** gets from the stream what nobody asked pycri for
  (a container's exit, a change behind its back): the shim passes on the
  events of pycri's containers unless it is changing that container itself
  (:meth:`ContainerView.expecting`), whose CRI event core publishes.

nerdctl 1.7's ``events`` subscribes to every namespace; the lines of other
namespaces are dropped before they are parsed. The probe leaves one label,
``io.pycri.events-probe``, on the shim's namespace.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, TypeVar

from pycri.core.engine import CONTAINER_KIND, KIND_LABEL
from pycri.errors import CRIError
from pycri_shims.nerdctl.events import (
    PROBE_LABEL,
    EngineEvent,
    Entry,
    apply_event,
    parse_event,
)
from pycri_shims.nerdctl.memo import InspectMemo
from pycri_shims.nerdctl.runner import NerdctlRunner, read_lines, stop_process

__all__ = ["ContainerView"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: seconds the probe's event may take before the stream is restarted
PROBE_TIMEOUT = 10.0
#: seconds between probes while none has come through
PROBE_INTERVAL = 0.2
#: seconds a container created behind the shim's back waits for a claim before it is inspected
FILL_GRACE = 0.3
#: seconds a mutation waits for its own event before the view is declared stale
AWAIT_TIMEOUT = 10.0
#: first and longest pause between restarts of a stream that keeps failing
BACKOFF = (0.1, 5.0)


class ContainerView:
    """The containers of one namespace, from a supervised ``nerdctl events`` stream."""

    def __init__(
        self,
        runner: NerdctlRunner,
        namespace: str,
        snapshot: Callable[[], list[dict[str, Any]]],
        on_event: Callable[[EngineEvent], None] | None = None,
        engine_socket: str | None = None,
    ) -> None:
        self.runner = runner
        self._engine_socket = engine_socket
        self.namespace = namespace
        self._snapshot = snapshot
        self._on_event = on_event
        self._lock = threading.Condition()
        self._entries: dict[str, Entry] = {}
        self._fresh = False
        self._dirty = False
        self._buffer: list[EngineEvent] | None = None
        self._probes: set[str] = set()
        #: containers the shim is changing itself (core reports those changes)
        self._expected: dict[str, int] = {}
        #: what the shim said of the containers it created (a rebuild's ps may miss them)
        self._claims: dict[str, tuple[str, str, dict[str, str]]] = {}
        self._probe_seen = False
        self._closed = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        #: generation of the stream: +1 whenever a new one is live (tests, Status info)
        self.generation = 0
        self.rebuilds = 0
        #: +1 on every image event of the namespace and every rebuild (memo.ImageMemo)
        self._image_epoch = 0
        #: the last ``container inspect`` of each id, dropped by any event of it (memo.py)
        self.inspected = InspectMemo()
        self._thread: threading.Thread | None = None
        self._ns_marker = f'"Namespace":{json.dumps(namespace)}'.encode()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._supervise, name="pycri-nerdctl-events", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._unfresh()
        process = self._process
        if process is not None:
            stop_process(process, "nerdctl events")
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def stream_pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def info(self) -> dict[str, Any]:
        with self._lock:
            return {
                "fresh": self._fresh,
                "containers": len(self._entries),
                "generation": self.generation,
                "rebuilds": self.rebuilds,
            }

    # -- reads -------------------------------------------------------------------

    @property
    def fresh(self) -> bool:
        with self._lock:
            return self._is_fresh()

    def _is_fresh(self) -> bool:
        """(Under the lock.) Fresh, and containerd's socket still there: a stopped
        containerd removes it at once, while its event stream takes a moment to end."""
        if self._fresh and self._engine_socket and not os.path.exists(self._engine_socket):
            log.warning("%s is gone: lists use nerdctl ps until it is back", self._engine_socket)
            self._mark_stale()
        return self._fresh

    def entries(self) -> list[Entry] | None:
        """Every known container whose labels are known; None when the view is not fresh."""
        with self._lock:
            if not self._is_fresh():
                return None
            return [e for e in self._entries.values() if e.labels is not None]

    def rows(self) -> list[dict[str, Any]] | None:
        """``ps -a --format json`` rows of the namespace; None when not fresh."""
        entries = self.entries()
        return None if entries is None else [e.row() for e in entries]

    def converted(self, kind: str, make: Callable[[dict[str, Any]], T]) -> list[T] | None:
        """``make`` of the row of every container of pycri ``kind``, kept until it changes;
        None when the view is not fresh."""
        with self._lock:
            if not self._is_fresh():
                return None
            made: list[T] = []
            for entry in self._entries.values():
                labels = entry.labels
                if labels is None or labels.get(KIND_LABEL) != kind:
                    continue
                item = entry.cached.get(kind)
                if item is None:
                    item = entry.cached[kind] = make(entry.row())
                made.append(item)
            return made

    def image_epoch(self) -> int | None:
        """What ImageMemo keys its answers by; None when the view is not fresh."""
        with self._lock:
            return self._image_epoch if self._is_fresh() else None

    def images_changed(self) -> None:
        with self._lock:
            self._image_epoch += 1

    def entry(self, container_id: str) -> tuple[bool, Entry | None]:
        """(fresh, the container's entry); an entry is only trusted when fresh."""
        with self._lock:
            if not self._is_fresh():
                return False, None
            entry = self._entries.get(container_id)
            if entry is not None and entry.labels is None:
                return False, None
            return True, entry

    # -- the shim's own changes --------------------------------------------------

    def claim(self, container_id: str, name: str, image: str, labels: Mapping[str, str]) -> None:
        """A container the shim just created: its labels (containerd's event has none)."""
        with self._lock:
            self._claims[container_id] = (name, image, dict(labels))
            entry = self._entries.get(container_id)
            if entry is None:
                entry = Entry.unclaimed(container_id)
                self._entries[container_id] = entry
            entry.claimed(*self._claims[container_id])
            self._lock.notify_all()

    @contextmanager
    def expecting(self, container_id: str) -> Iterator[None]:
        """The shim changes the container: its events are not passed on to ``on_event``
        (core publishes the CRI event of an RPC's own change)."""
        with self._lock:
            self._expected[container_id] = self._expected.get(container_id, 0) + 1
        self.inspected.drop(container_id)
        try:
            yield
        finally:
            self.inspected.drop(container_id)
            with self._lock:
                left = self._expected.pop(container_id) - 1
                if left:
                    self._expected[container_id] = left

    def touched(self, object_id: str) -> None:
        """The shim changed the pod or container: its kept inspect goes."""
        self.inspected.drop(object_id)

    def inspect(self, object_id: str, look: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """``look(object_id)`` (a ``container inspect``), kept until any event of the id
        while the view is fresh and knows it (memo.InspectMemo)."""
        with self._lock:
            entry = self._entries.get(object_id)
            trusted = self._is_fresh() and entry is not None and entry.labels is not None
        return self.inspected.get(object_id, look, trusted)

    def await_state(self, container_id: str, done: Callable[[Entry | None], bool]) -> None:
        """Wait until the stream has brought what ``done`` expects of the container.

        Returns at once when the view is not fresh (lists use ``ps`` then); if
        the event does not come within AWAIT_TIMEOUT the view is rebuilt.
        """
        deadline = time.monotonic() + AWAIT_TIMEOUT
        with self._lock:
            while self._fresh and not done(self._entries.get(container_id)):
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning(
                        "no event for %s within %gs: rebuilding the container view",
                        container_id[:13],
                        AWAIT_TIMEOUT,
                    )
                    self._mark_stale()
                    return
                self._lock.wait(left)

    def invalidate(self) -> None:
        """Something may have changed without an event the view understands: rebuild."""
        with self._lock:
            self._mark_stale()

    def _mark_stale(self) -> None:
        self._unfresh()
        self._dirty = True

    def _unfresh(self) -> None:
        """(Under the lock.) Not fresh: events may be missed from now on."""
        self._fresh = False
        self.inspected.clear()
        self._lock.notify_all()

    # -- the stream ----------------------------------------------------------------

    def _supervise(self) -> None:
        pause = BACKOFF[0]
        while not self._closed.is_set():
            started = time.monotonic()
            try:
                self._run_stream()
            except Exception:
                log.exception("the container event stream failed")
            with self._lock:
                self._unfresh()
            if time.monotonic() - started > 30:
                pause = BACKOFF[0]
            if self._closed.wait(pause):
                return
            pause = min(pause * 2, BACKOFF[1])

    def _run_stream(self) -> None:
        try:
            process = subprocess.Popen(
                self.runner.argv(["events", "--format", "json"]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=self.runner.environment(),
                start_new_session=True,
            )
        except OSError as err:
            log.warning("cannot run nerdctl events (%s): lists use nerdctl ps", err)
            return
        self._process = process
        assert process.stdout is not None
        reader = threading.Thread(
            target=self._read,
            args=(process.stdout,),
            name="pycri-nerdctl-events-reader",
            daemon=True,
        )
        reader.start()
        try:
            if not self._probe_live(process):
                log.warning("nerdctl events showed no probe event: restarting it")
                return
            self.generation += 1
            while process.poll() is None and not self._closed.is_set():
                self._rebuild()
                self._watch(process)
            if not self._closed.is_set():
                log.warning(
                    "nerdctl events ended (exit %s): lists use nerdctl ps until it is back",
                    process.returncode,
                )
        finally:
            stop_process(process, "nerdctl events")
            reader.join(timeout=5)
            process.stdout.close()
            self._process = None

    def _probe_live(self, process: subprocess.Popen[bytes]) -> bool:
        """Update the probe label until its event comes through (the first ones may
        come before ``nerdctl events`` has subscribed)."""
        deadline = time.monotonic() + PROBE_TIMEOUT
        with self._lock:
            self._probes.clear()
            self._probe_seen = False
        while process.poll() is None and not self._closed.is_set():
            token = uuid.uuid4().hex
            with self._lock:
                self._probes.add(token)
            try:
                self.runner.run(
                    ["namespace", "update", "--label", f"{PROBE_LABEL}={token}", self.namespace]
                )
            except CRIError as err:
                log.warning("cannot probe the event stream: %s", err.message)
                return False
            with self._lock:
                self._lock.wait_for(lambda: self._probe_seen, PROBE_INTERVAL)
                if self._probe_seen:
                    return True
            if time.monotonic() > deadline:
                return False
        return False

    def _rebuild(self) -> None:
        """``ps`` under a live stream; the events that came meanwhile replayed over it."""
        with self._lock:
            self._buffer = []
            self._dirty = False
        try:
            rows = self._snapshot()
        except CRIError as err:
            log.warning("cannot rebuild the container view: %s", err.message)
            with self._lock:
                self._buffer = None
                self._dirty = True
            self._closed.wait(BACKOFF[0])
            return
        with self._lock:
            entries = {str(row["ID"]): Entry.from_row(row) for row in rows if row.get("ID")}
            buffered, self._buffer = self._buffer or [], None
            complete = all(apply_event(entries, event) for event in buffered)
            # a container the shim created while ps ran: its create event made it a stub
            self._claims = {cid: c for cid, c in self._claims.items() if cid in entries}
            for cid, claim in self._claims.items():
                entries[cid].claimed(*claim)
            self._entries = entries
            self.inspected.clear()
            self._fresh = complete and not self._dirty
            self._dirty = self._dirty or not complete
            self.rebuilds += 1
            self._image_epoch += 1
            self._lock.notify_all()

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        """Until the stream ends or the view needs a rebuild: inspect unclaimed containers."""
        while process.poll() is None and not self._closed.is_set():
            with self._lock:
                if self._dirty:
                    return
                self._lock.wait(0.1)
                now = time.monotonic()
                unknown = [
                    e.id
                    for e in self._entries.values()
                    if e.labels is None and now - e.since >= FILL_GRACE
                ]
            if unknown:
                self._fill(unknown)

    def _fill(self, ids: list[str]) -> None:
        result = self.runner.run(["container", "inspect", *ids], check=False)
        try:
            found = result.json() if result.stdout.strip() else []
        except ValueError:
            found = []
        appeared: list[EngineEvent] = []
        with self._lock:
            for data in found if isinstance(found, list) else []:
                entry = self._entries.get(str(data.get("Id") or ""))
                if entry is None or entry.labels is not None:
                    continue
                entry.labels = dict((data.get("Config") or {}).get("Labels") or {})
                entry.name = str(data.get("Name") or "")
                entry.created = str(data.get("Created") or entry.created)
                entry.image = str(data.get("Image") or entry.image)
                entry.cached.clear()
                if self._fresh and entry.labels.get(KIND_LABEL) == CONTAINER_KIND:
                    appeared.append(
                        EngineEvent("/containers/create", self.namespace, entry.id, entry.created)
                    )
            now = time.monotonic()
            for cid in ids:  # gone meanwhile (its delete event follows), or inspect failed
                entry = self._entries.get(cid)
                if entry is not None and entry.labels is None:
                    entry.since = now
            self._lock.notify_all()
        for event in appeared:
            self._pass_on(event)

    def _read(self, stream: IO[bytes]) -> None:
        for line in read_lines(stream):
            probe = b"/namespaces/update" in line
            if not probe and self._ns_marker not in line:
                continue  # another namespace's: not even parsed
            event = parse_event(line)
            if event is None:
                continue
            self._feed(event)
        with self._lock:
            self._unfresh()

    def _feed(self, event: EngineEvent) -> None:
        with self._lock:
            if event.probe:
                if event.probe in self._probes:
                    self._probe_seen = True
                    self._lock.notify_all()
                return
            if event.namespace != self.namespace:
                return
            if event.topic.startswith("/images/"):
                self._image_epoch += 1
            if event.container_id:
                self.inspected.drop(event.container_id)
            if self._buffer is not None:
                self._buffer.append(event)
                return
            before = self._entries.get(event.container_id)
            kind = (before.labels or {}).get(KIND_LABEL) if before is not None else None
            if not apply_event(self._entries, event):
                self._mark_stale()
                return
            if event.topic == "/containers/delete":
                self._claims.pop(event.container_id, None)
            self._lock.notify_all()
            # what nobody asked pycri for: an exit, a change behind its back
            spontaneous = (
                self._fresh and kind == CONTAINER_KIND and event.container_id not in self._expected
            )
        if spontaneous:
            self._pass_on(event)

    def _pass_on(self, event: EngineEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("handling event %s failed", event.topic)
