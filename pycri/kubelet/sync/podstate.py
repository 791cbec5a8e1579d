"""What the kubelet persists per pod: only what the runtime cannot tell.

``<root>/pods/<uid>/state.json`` holds the pod's identity (to clean up its
directories once the runtime has forgotten it), probe results by container
id, the reasons containers wait for (ErrImagePull, ...) and recent events.
Phases, restart counts and back-offs are *not* here: they are derived from
the runtime every time. ``deletion.json`` next to it is a deletion request
written by a command for the daemon to carry out with its grace period.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Event", "PodState", "read_deletion", "write_deletion", "write_json"]

MAX_EVENTS = 50


@dataclass
class Event:
    time: float
    type: str
    reason: str
    message: str
    count: int = 1
    first_time: float = 0.0


@dataclass
class PodState:
    name: str
    namespace: str
    uid: str
    log_dir: str = ""
    probes: dict[str, dict[str, bool | None]] = field(default_factory=dict)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def record(self, now: float, kind: str, reason: str, message: str) -> None:
        """Add an event; a repeat of the last one of its reason only counts up."""
        with self._lock:
            for event in reversed(self.events[-5:]):
                if event.reason == reason and event.message == message:
                    event.count += 1
                    event.time = now
                    return
            self.events.append(Event(now, kind, reason, message, 1, now))
            del self.events[:-MAX_EVENTS]

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": self.name,
                "namespace": self.namespace,
                "uid": self.uid,
                "logDir": self.log_dir,
                "probes": self.probes,
                "waiting": {k: list(v) for k, v in self.waiting.items()},
                "events": [asdict(e) for e in self.events],
            }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodState:
        state = cls(
            name=str(data.get("name", "")),
            namespace=str(data.get("namespace", "")),
            uid=str(data.get("uid", "")),
            log_dir=str(data.get("logDir", "")),
        )
        probes = data.get("probes") or {}
        if isinstance(probes, dict):
            state.probes = {str(k): dict(v) for k, v in probes.items() if isinstance(v, dict)}
        waiting = data.get("waiting") or {}
        if isinstance(waiting, dict):
            state.waiting = {
                str(k): (str(v[0]), str(v[1]))
                for k, v in waiting.items()
                if isinstance(v, list) and len(v) == 2
            }
        for raw in data.get("events") or []:
            try:
                state.events.append(Event(**raw))
            except TypeError:
                continue
        return state

    @classmethod
    def read(cls, path: Path) -> PodState | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls.from_json(data) if isinstance(data, dict) else None

    def write(self, path: Path) -> None:
        write_json(path, self.to_json())


def write_json(path: Path, data: Any) -> None:
    """Write atomically (temp file + rename), so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_deletion(pod_dir: Path, grace_period: int | None, now: float) -> None:
    write_json(pod_dir / "deletion.json", {"gracePeriodSeconds": grace_period, "requestedAt": now})


def read_deletion(pod_dir: Path) -> tuple[bool, int | None]:
    """(requested, grace period override)."""
    try:
        data = json.loads((pod_dir / "deletion.json").read_text())
    except FileNotFoundError:
        return False, None
    except (OSError, ValueError):
        return True, None
    grace = data.get("gracePeriodSeconds") if isinstance(data, dict) else None
    return True, grace if isinstance(grace, int) and not isinstance(grace, bool) else None
