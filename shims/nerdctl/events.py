"""containerd's events as ``nerdctl events --format json`` prints them, and their effect.

:func:`parse_event` reads one line into an :class:`EngineEvent`;
:func:`apply_event` applies it to the view's :class:`Entry` of each
container (a ``ps -a`` row kept up to date). Pure: no process, no thread,
so what each topic does can be read (and unit tested) in one place.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CREATED",
    "PAUSED",
    "PROBE_LABEL",
    "RUNNING",
    "EngineEvent",
    "Entry",
    "apply_event",
    "exited",
    "gone",
    "not_running",
    "parse_event",
    "started",
]

#: the namespace label whose update proves the event subscription is live
PROBE_LABEL = "io.pycri.events-probe"

#: what ``nerdctl ps`` prints for each task state (its formatter.ContainerStatus)
CREATED, RUNNING, PAUSED = "Created", "Up", "Paused"


def exited(code: int) -> str:
    return f"Exited ({code})"


def started(entry: Entry | None) -> bool:
    """An await_state condition: the container's task has started (or it is gone)."""
    return entry is None or entry.status != CREATED


def not_running(entry: Entry | None) -> bool:
    return entry is None or not entry.status.startswith((RUNNING, PAUSED))


def gone(entry: Entry | None) -> bool:
    return entry is None


@dataclass(frozen=True)
class EngineEvent:
    """One line of ``nerdctl events --format json``, the parts the view uses."""

    topic: str
    namespace: str
    #: the container's id ("" for events about no container)
    container_id: str
    timestamp: str
    #: /tasks/exit: the process that exited is the container's init (not an exec)
    init: bool = True
    exit_status: int = 0
    #: /containers/update: the container's labels as they are now
    labels: dict[str, str] | None = None
    image: str = ""
    #: /namespaces/update: the probe label's value
    probe: str = ""


def parse_event(line: str | bytes) -> EngineEvent | None:
    """An event line; None for what is not JSON or not an event."""
    try:
        envelope = json.loads(line)
        inner = json.loads(envelope.get("Event") or "{}")
    except (ValueError, AttributeError):
        return None
    if not isinstance(envelope, dict) or not isinstance(inner, dict):
        return None
    topic = str(envelope.get("Topic") or "")
    namespace = str(envelope.get("Namespace") or "")
    timestamp = str(envelope.get("Timestamp") or "")
    labels = inner.get("labels")
    if not isinstance(labels, dict):
        labels = None
    if topic.startswith("/containers/"):
        return EngineEvent(
            topic,
            namespace,
            str(inner.get("id") or ""),
            timestamp,
            labels={str(k): str(v) for k, v in labels.items()} if labels is not None else None,
            image=str(inner.get("image") or ""),
        )
    if topic.startswith("/tasks/"):
        container_id = str(inner.get("container_id") or envelope.get("ID") or "")
        process = str(inner.get("id") or container_id)
        return EngineEvent(
            topic,
            namespace,
            container_id,
            timestamp,
            init=process == container_id,
            exit_status=int(inner.get("exit_status") or 0),
        )
    probe = str((labels or {}).get(PROBE_LABEL, "")) if topic == "/namespaces/update" else ""
    return EngineEvent(topic, namespace, "", timestamp, probe=probe)


@dataclass
class Entry:
    """One container as ``ps -a --format json`` shows it, kept up to date by events."""

    id: str
    status: str
    created: str
    image: str = ""
    name: str = ""
    #: None: created behind the shim's back, not inspected yet (left out of lists)
    labels: dict[str, str] | None = None
    since: float = field(default_factory=time.monotonic)
    #: what a caller made of the row (e.g. its CRI message), dropped on every change
    cached: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Names": self.name,
            "Image": self.image,
            "Labels": self.labels or {},
            "CreatedAt": self.created,
            "Status": self.status,
        }

    @classmethod
    def unclaimed(cls, container_id: str) -> Entry:
        """A container the shim has just created, before containerd's event came."""
        now = datetime.datetime.fromtimestamp(time.time(), datetime.UTC)
        return cls(container_id, CREATED, now.isoformat().replace("+00:00", "Z"))

    def claimed(self, name: str, image: str, labels: Mapping[str, str]) -> None:
        """What the shim said of the container it created (containerd's event has no labels)."""
        if self.labels is None:
            self.labels = dict(labels)
            self.cached.clear()
        self.name = self.name or name
        self.image = self.image or image

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Entry:
        return cls(
            id=str(row["ID"]),
            status=str(row.get("Status") or ""),
            created=str(row.get("CreatedAt") or ""),
            image=str(row.get("Image") or ""),
            name=str(row.get("Names") or ""),
            labels=dict(row.get("Labels") or {}),
        )


def apply_event(entries: dict[str, Entry], event: EngineEvent) -> bool:
    """Apply one event of the view's namespace; False when it cannot be (unknown container)."""
    cid = event.container_id
    if not cid:
        return True
    entry = entries.get(cid)
    topic = event.topic
    if topic == "/containers/create":
        if entry is None:
            entries[cid] = Entry(cid, CREATED, event.timestamp, image=event.image)
        return True
    if topic == "/containers/delete":
        entries.pop(cid, None)
        return True
    if entry is None:
        # an event about a container the view never saw created: only a rebuild knows it
        return topic in ("/tasks/delete", "/tasks/exit")
    if topic == "/containers/update" and event.labels is not None:
        entry.labels = event.labels
        entry.image = event.image or entry.image
        entry.name = event.labels.get("nerdctl/name", entry.name)
    elif topic == "/tasks/start":
        entry.status = RUNNING
    elif topic == "/tasks/exit" and event.init:
        entry.status = exited(event.exit_status)
    elif topic == "/tasks/paused":
        entry.status = PAUSED
    elif topic == "/tasks/resumed":
        entry.status = RUNNING
    elif topic == "/tasks/delete" and event.init:
        entry.status = CREATED  # no task: nerdctl's ps says "Created"
    else:
        return True
    entry.cached.clear()
    return True
