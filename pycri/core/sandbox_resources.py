"""UpdatePodSandboxResources: the pod-level resources the kubelet last reported, kept per pod.

The kubelet (in-place pod resize) resizes the pod cgroup itself, then tells
the runtime the pod's new overhead and aggregate resources, best effort.
containerd 2.x records them with the sandbox (and hands them to NRI plugins)
and shows them in ``PodSandboxStatus`` verbose info, as ``overhead`` and
``resources`` of its ``info`` JSON: pycri does the same for every shim that
gives core a :class:`SandboxResources` store (``Shim.sandbox_resources``).

Engines cannot take these figures (Docker and nerdctl labels are fixed at
create), so the store is pycri's own: one small JSON file a pod under the
shim's state directory, written atomically, removed with the pod (core
forgets it on RemovePodSandbox and sweeps records whose pod the engine no
longer knows), or kept in memory for a shim without files (the fake).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from pycri.api import api_pb2 as cri
from pycri.errors import InternalError, InvalidArgumentError

__all__ = ["PodResources", "SandboxResources", "info_with_resources"]

log = logging.getLogger(__name__)

#: what a pod id must look like to name a file (engines' ids are hex; the fake's too)
_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_SUFFIX = ".json"
#: a temporary file older than this was left by a writer that died mid-write
_STALE_TEMP_SECONDS = 60.0


@dataclass(frozen=True)
class PodResources:
    """What one UpdatePodSandboxResources said; None where the request left a field out."""

    overhead: cri.LinuxContainerResources | None
    resources: cri.LinuxContainerResources | None

    def to_json(self) -> dict[str, Any]:
        return {
            name: json_format.MessageToDict(value, preserving_proto_field_name=True)
            for name, value in (("overhead", self.overhead), ("resources", self.resources))
            if value is not None
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodResources:
        def parse(name: str) -> cri.LinuxContainerResources | None:
            if name not in data:
                return None
            return json_format.ParseDict(data[name], cri.LinuxContainerResources())

        return cls(overhead=parse("overhead"), resources=parse("resources"))

    def info(self) -> dict[str, Any]:
        """containerd's shape: ``{"overhead": {"linux": {...}}, "resources": {"linux": {...}}}``
        with its snake_case names and numbers (Go's JSON of the CRI structs)."""
        return {
            name: {"linux": _go_json(value)}
            for name, value in (("overhead", self.overhead), ("resources", self.resources))
            if value is not None
        }


def _go_json(res: cri.LinuxContainerResources) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in res.ListFields():
        if field.name == "hugepage_limits":
            out[field.name] = [{"page_size": h.page_size, "limit": h.limit} for h in value]
        elif field.name == "unified":
            out[field.name] = dict(value)
        else:
            out[field.name] = value
    return out


def info_with_resources(info: dict[str, str], recorded: PodResources) -> dict[str, str]:
    """Verbose PodSandboxStatus ``info`` with the recorded resources in its ``info`` JSON."""
    merged = dict(info)
    details: Any = {}
    if "info" in merged:
        try:
            details = json.loads(merged["info"])
        except ValueError:
            details = None
    if isinstance(details, dict):
        details.update(recorded.info())
        merged["info"] = json.dumps(details)
    else:  # a shim's own info that is not a JSON object: leave it, add ours beside it
        merged["resources"] = json.dumps(recorded.info())
    return merged


class SandboxResources:
    """The records of one shim: files under ``directory``, or in memory when it is None.

    Thread safe; servers sharing the directory each write only their own pods'
    files, atomically, so a reader never sees half a record.
    """

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, PodResources] = {}
        self._lock = threading.Lock()

    def _path(self, pod_id: str) -> Path:
        assert self.directory is not None
        if not _FILE_ID.fullmatch(pod_id):
            raise InvalidArgumentError(f"pod sandbox id {pod_id[:80]!r} cannot name a record")
        return self.directory / f"{pod_id}{_SUFFIX}"

    def save(self, pod_id: str, recorded: PodResources) -> None:
        if self.directory is None:
            with self._lock:
                self._memory[pod_id] = recorded
            return
        path = self._path(pod_id)
        data = json.dumps({"pod_sandbox_id": pod_id, **recorded.to_json()}).encode()
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{pod_id}.", suffix=".tmp", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise InternalError(
                f"cannot record the resources of pod sandbox {pod_id[:13]} in {path}: "
                f"{err.strerror or err}"
            ) from None

    def load(self, pod_id: str) -> PodResources | None:
        if self.directory is None:
            with self._lock:
                return self._memory.get(pod_id)
        if not _FILE_ID.fullmatch(pod_id):
            return None
        try:
            data = json.loads(self._path(pod_id).read_bytes())
            return PodResources.from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, json_format.ParseError) as err:
            log.warning("ignoring the unreadable resources record of %s: %s", pod_id[:13], err)
            return None

    def forget(self, pod_id: str) -> None:
        if self.directory is None:
            with self._lock:
                self._memory.pop(pod_id, None)
            return
        if _FILE_ID.fullmatch(pod_id):
            self._path(pod_id).unlink(missing_ok=True)

    def pod_ids(self) -> list[str]:
        """Every pod with a record (what :meth:`sweep` and leak checks look at)."""
        if self.directory is None:
            with self._lock:
                return sorted(self._memory)
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(
            name[: -len(_SUFFIX)]
            for name in names
            if name.endswith(_SUFFIX) and _FILE_ID.fullmatch(name[: -len(_SUFFIX)])
        )

    def sweep(self, gone: Callable[[str], bool]) -> list[str]:
        """Forget the records of pods that ``gone`` says no longer exist (removed behind
        pycri's back, or while it was down), and temporary files of dead writers."""
        dropped = [pod_id for pod_id in self.pod_ids() if gone(pod_id)]
        for pod_id in dropped:
            self.forget(pod_id)
        if dropped:
            log.info("forgot the resources of %d removed pod sandboxes", len(dropped))
        if self.directory is not None:
            self._sweep_temporaries()
        return dropped

    def _sweep_temporaries(self) -> None:
        assert self.directory is not None
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                path = self.directory / name
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
