"""The desired state: a directory of manifests, like the kubelet's ``--pod-manifest-path``.

Every ``*.yaml``, ``*.yml`` and ``*.json`` file (dotfiles skipped, as the
kubelet does) holds Pods and Deployments. A file is parsed again only
when it changes. A file that fails to parse keeps the pods it had: the
sync loop leaves pods whose source file is broken alone rather than kill
them over a typo. ``apply`` and ``delete`` edit documents in place (a new
object gets its own file, ``<namespace>_<name>.<kind>.yaml``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pycri.kubelet.model.manifest import (
    ManifestError,
    ManifestObject,
    load_documents,
    parse_documents,
)
from pycri.kubelet.model.spec import Pod

__all__ = ["ApplyResult", "DesiredState", "ManifestDir"]

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
ApplyResult = Literal["created", "configured", "unchanged"]


@dataclass
class DesiredState:
    """What the manifests ask for, and what went wrong reading them."""

    pods: dict[str, Pod] = field(default_factory=dict)
    objects: list[tuple[Path, ManifestObject]] = field(default_factory=list)
    #: file -> why it could not be read (its pods are left alone)
    broken: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def by_name(self, namespace: str, name: str) -> Pod | None:
        return next(
            (p for p in self.pods.values() if p.namespace == namespace and p.name == name), None
        )

    def object(self, kind: str, namespace: str, name: str) -> ManifestObject | None:
        return next((o for _, o in self.objects if o.key == (kind, namespace, name)), None)


@dataclass(frozen=True)
class _Parsed:
    stamp: tuple[int, int, int]
    objects: tuple[ManifestObject, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str = ""


class ManifestDir:
    def __init__(self, path: Path, node: str) -> None:
        self.path = Path(path)
        self.node = node
        self._cache: dict[Path, _Parsed] = {}

    def files(self) -> list[Path]:
        try:
            entries = sorted(self.path.iterdir())
        except FileNotFoundError:
            return []
        return [
            p
            for p in entries
            if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file()
        ]

    def _parse(self, path: Path) -> _Parsed:
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError as err:
            return _Parsed((0, 0, 0), error=str(err))
        cached = self._cache.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached
        try:
            manifest = parse_documents(
                load_documents(path.read_text(), path.name), source=str(path), node=self.node
            )
            parsed = _Parsed(stamp, manifest.objects, manifest.warnings)
        except ManifestError as err:
            parsed = _Parsed(stamp, error=str(err))
        except (OSError, UnicodeDecodeError) as err:
            parsed = _Parsed(stamp, error=f"{path}: cannot read: {err}")
        self._cache[path] = parsed
        for warning in parsed.warnings:
            log.warning("%s", warning)
        if parsed.error:
            log.error("%s", parsed.error)
        return parsed

    def load(self) -> DesiredState:
        state = DesiredState()
        files = self.files()
        for gone in [p for p in self._cache if p not in files]:
            del self._cache[gone]
        names: dict[tuple[str, str], str] = {}
        for path in files:
            parsed = self._parse(path)
            state.warnings += parsed.warnings
            if parsed.error:
                state.broken[str(path)] = parsed.error
                continue
            for obj in parsed.objects:
                state.objects.append((path, obj))
                for pod in obj.pods:
                    where = f"{path.name} ({obj.describe()})"
                    other = names.get((pod.namespace, pod.name))
                    if other is not None or pod.uid in state.pods:
                        state.warnings.append(
                            f"{where}: pod {pod.namespace}/{pod.name} is also defined by "
                            f"{other or 'another manifest'}; this one is ignored"
                        )
                        continue
                    names[(pod.namespace, pod.name)] = where
                    state.pods[pod.uid] = pod
        return state

    # -- editing ------------------------------------------------------------------------

    def _documents(self, path: Path) -> list[Any]:
        return load_documents(path.read_text(), path.name)

    def _write(self, path: Path, documents: list[Any]) -> None:
        if not documents:
            path.unlink(missing_ok=True)
            return
        if path.suffix == ".json":
            data = (
                documents[0]
                if len(documents) == 1
                else {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": documents,
                }
            )
            text = json.dumps(data, indent=2) + "\n"
        else:
            text = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
        self.path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=self.path)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def locate(self, kind: str, namespace: str, name: str) -> tuple[Path, int] | None:
        """The file and document index holding an object."""
        for path in self.files():
            parsed = self._parse(path)
            for index, obj in enumerate(parsed.objects):
                if obj.key == (kind, namespace, name):
                    return path, index
        return None

    def put(self, obj: ManifestObject) -> ApplyResult:
        """Write ``obj`` (replacing the document of the same kind, namespace and name)."""
        found = self.locate(*obj.key)
        document = dict(obj.document)
        if found is None:
            path = self.path / f"{obj.namespace}_{obj.name}.{obj.kind.lower()}.yaml"
            self._write(path, [document])
            return "created"
        path, index = found
        documents = self._documents(path)
        if _same(documents[index], document):
            return "unchanged"
        documents[index] = document
        self._write(path, documents)
        return "configured"

    def remove(self, kind: str, namespace: str, name: str) -> bool:
        found = self.locate(kind, namespace, name)
        if found is None:
            return False
        path, index = found
        documents = self._documents(path)
        del documents[index]
        self._write(path, documents)
        return True

    def set_replicas(self, namespace: str, name: str, replicas: int) -> ApplyResult:
        found = self.locate("Deployment", namespace, name)
        if found is None:
            raise KeyError(name)
        path, index = found
        documents = self._documents(path)
        document = dict(documents[index])
        spec = dict(document.get("spec") or {})
        if spec.get("replicas", 1) == replicas:
            return "unchanged"
        spec["replicas"] = replicas
        document["spec"] = spec
        documents[index] = document
        # validate before writing: a scaled document must still be a valid one
        parse_documents([document], source=str(path), node=self.node)
        self._write(path, documents)
        return "configured"


def _same(a: Any, b: Mapping[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
