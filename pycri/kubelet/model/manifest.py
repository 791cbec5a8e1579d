"""Pod manifests: Kubernetes ``v1`` Pod and ``apps/v1`` Deployment, YAML or JSON, multi-document.

    manifest = parse_manifest(text, source="web.yaml", node="node-1")
    for pod in manifest.pods: ...
    for warning in manifest.warnings: ...   # fields we do not act on

An invalid document raises :class:`ManifestError` whose messages name the
field path (``spec.containers[1].image: required value``); a field that
is valid Kubernetes but not acted on here is a warning, never dropped
silently. ``kind: List`` documents (what ``kubectl get -o yaml`` prints)
are read item by item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from pycri.kubelet.model.fields import Fields, join
from pycri.kubelet.model.labels import derive_uid
from pycri.kubelet.model.podspec import read_pod_spec
from pycri.kubelet.model.spec import Deployment, Pod

__all__ = [
    "DEFAULT_NAMESPACE",
    "Manifest",
    "ManifestError",
    "ManifestObject",
    "load_documents",
    "parse_documents",
    "parse_manifest",
]

DEFAULT_NAMESPACE = "default"
#: set by an API server, so harmless in a document copied from ``kubectl get -o yaml``
_OUTPUT_ONLY = (
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
_METADATA_UNSUPPORTED = {
    "generateName": "give the pod a name",
    "ownerReferences": "there is no garbage collector",
    "finalizers": "there is no API server",
}
_DEPLOYMENT_UNSUPPORTED = {
    "strategy": "a changed template replaces every replica at once",
    "minReadySeconds": "not supported by pycri-kubelet",
    "revisionHistoryLimit": "there are no ReplicaSets",
    "progressDeadlineSeconds": "not supported by pycri-kubelet",
    "paused": "not supported by pycri-kubelet",
}
#: a document copied from ``kubectl get -o yaml`` has a status; it is output-only
_QUIET_TOP = ("status",)


class ManifestError(ValueError):
    """A manifest this kubelet refuses; every message starts with the field path."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class ManifestObject:
    """One document: a Pod, or a Deployment and the replica pods it asks for."""

    kind: str
    name: str
    namespace: str
    document: Mapping[str, Any]
    pods: tuple[Pod, ...]
    deployment: Deployment | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    def describe(self) -> str:
        """``pod/web`` as kubectl names objects."""
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True)
class Manifest:
    objects: tuple[ManifestObject, ...]
    warnings: tuple[str, ...] = ()

    @property
    def pods(self) -> tuple[Pod, ...]:
        return tuple(pod for obj in self.objects for pod in obj.pods)


def load_documents(text: str, source: str = "") -> list[Any]:
    """The documents of a YAML or JSON text (``kind: List`` expanded, empty ones dropped)."""
    where = f"{source}: " if source else ""
    try:
        raw = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        raise ManifestError([f"{where}not valid YAML or JSON: {err}"]) from None
    documents: list[Any] = []
    for doc in raw:
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise ManifestError([f"{where}items: must be a list"])
            documents.extend(items)
        else:
            documents.append(doc)
    return documents


def parse_manifest(text: str, *, source: str = "", node: str = "") -> Manifest:
    """Parse every document of ``text``; ManifestError lists every problem found."""
    return parse_documents(load_documents(text, source), source=source, node=node)


def parse_documents(documents: Iterable[Any], *, source: str = "", node: str = "") -> Manifest:
    docs = list(documents)
    objects: list[ManifestObject] = []
    errors: list[str] = []
    warnings: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for index, doc in enumerate(docs):
        fields = Fields()
        obj = _parse_object(doc, fields, source, node)
        prefix = _prefix(source, index if len(docs) > 1 else None, obj)
        errors += [prefix + e for e in fields.errors]
        warnings += [prefix + w for w in fields.warnings]
        if obj is None or fields.errors:
            continue
        if obj.key in seen:
            errors.append(f"{prefix}metadata.name: duplicate {obj.kind} {obj.name!r}")
            continue
        seen.add(obj.key)
        objects.append(obj)
    if errors:
        raise ManifestError(errors)
    return Manifest(tuple(objects), tuple(warnings))


def _prefix(source: str, index: int | None, obj: ManifestObject | None) -> str:
    parts = [source] if source else []
    if index is not None:
        parts.append(f"document {index + 1}")
    if obj is not None:
        parts.append(f'{obj.kind.lower()} "{obj.name}"')
    return ": ".join(parts) + ": " if parts else ""


def _parse_object(doc: Any, f: Fields, source: str, node: str) -> ManifestObject | None:
    if not isinstance(doc, Mapping):
        f.error("(document)", "must be an object with apiVersion, kind, metadata and spec")
        return None
    kind = f.string(doc, "kind", "", required=True)
    api = f.string(doc, "apiVersion", "", required=True)
    if kind == "Pod":
        if api and api != "v1":
            f.error("apiVersion", f"a Pod is apiVersion v1, not {api!r}")
        return _pod_object(doc, f, source, node)
    if kind == "Deployment":
        if api and api != "apps/v1":
            f.error("apiVersion", f"a Deployment is apiVersion apps/v1, not {api!r}")
        return _deployment_object(doc, f, source, node)
    if kind:
        f.error("kind", f"unsupported kind {kind!r}: Pod, Deployment or List")
    return None


def _metadata(
    f: Fields, value: Any, path: str, *, template: bool = False
) -> tuple[str, str, str, dict[str, str], dict[str, str]]:
    """name, namespace, uid, labels, annotations."""
    meta = f.mapping(value, path)
    supported = ["labels", "annotations"] if template else ["name", "namespace", "uid"]
    if not template:
        supported += ["labels", "annotations"]
    unsupported = dict(_METADATA_UNSUPPORTED)
    if template:
        unsupported.update(
            name="replicas are named <deployment>-<index>",
            namespace="replicas run in the Deployment's namespace",
            uid="every replica gets its own uid",
        )
    f.known(meta, path, supported, unsupported, quiet=_OUTPUT_ONLY)
    name = namespace = uid = ""
    if not template:
        name = f.string(meta, "name", path, required=True)
        f.dns_subdomain(name, join(path, "name"))
        namespace = f.string(meta, "namespace", path) or DEFAULT_NAMESPACE
        f.dns_label(namespace, join(path, "namespace"))
        uid = f.string(meta, "uid", path)
        if uid and not all(c.isalnum() or c in "-." for c in uid):
            f.error(join(path, "uid"), f"invalid value {uid!r}: letters, digits, '-' and '.'")
    labels = f.string_map(meta, "labels", path)
    f.labels(labels, join(path, "labels"))
    annotations = f.string_map(meta, "annotations", path)
    return name, namespace, uid, labels, annotations


def _pod_object(doc: Mapping[str, Any], f: Fields, source: str, node: str) -> ManifestObject:
    f.known(doc, "", ("apiVersion", "kind", "metadata", "spec"), quiet=_QUIET_TOP)
    name, namespace, uid, labels, annotations = _metadata(f, doc.get("metadata"), "metadata")
    if doc.get("spec") is None:
        f.error("spec", "required value")
    spec = read_pod_spec(doc.get("spec"), "spec", f, node)
    pod = Pod(
        name=name,
        namespace=namespace,
        uid=uid or derive_uid(doc, node, name),
        spec=spec,
        labels=labels,
        annotations=annotations,
        source=source,
        raw=dict(doc),
    )
    return ManifestObject("Pod", name, namespace, dict(doc), (pod,))


def _deployment_object(doc: Mapping[str, Any], f: Fields, source: str, node: str) -> ManifestObject:
    f.known(doc, "", ("apiVersion", "kind", "metadata", "spec"), quiet=_QUIET_TOP)
    name, namespace, _, labels, _ = _metadata(f, doc.get("metadata"), "metadata")
    spec = f.mapping(doc.get("spec"), "spec")
    f.known(spec, "spec", ("replicas", "selector", "template"), _DEPLOYMENT_UNSUPPORTED)
    replicas = f.integer(spec, "replicas", "spec", 1, minimum=0)
    selector_obj = f.mapping(spec.get("selector"), "spec.selector")
    f.known(
        selector_obj,
        "spec.selector",
        ("matchLabels",),
        {"matchExpressions": "only matchLabels selectors are supported"},
    )
    selector = f.string_map(selector_obj, "matchLabels", "spec.selector")
    if not selector:
        f.error("spec.selector", "required value (matchLabels)")
    template = f.mapping(spec.get("template"), "spec.template")
    f.known(template, "spec.template", ("metadata", "spec"))
    _, _, _, pod_labels, pod_annotations = _metadata(
        f, template.get("metadata"), "spec.template.metadata", template=True
    )
    mismatch = {k: v for k, v in selector.items() if pod_labels.get(k) != v}
    if selector and mismatch:
        f.error(
            "spec.template.metadata.labels",
            f"selector does not match template labels (missing {mismatch})",
        )
    if template.get("spec") is None:
        f.error("spec.template.spec", "required value")
    pod_spec = read_pod_spec(template.get("spec"), "spec.template.spec", f, node)
    pods = []
    for index in range(replicas if not f.errors else 0):
        pod_name = f"{name}-{index}"
        raw = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "labels": pod_labels,
                "annotations": pod_annotations,
            },
            "spec": template.get("spec"),
        }
        pods.append(
            Pod(
                name=pod_name,
                namespace=namespace,
                # the template and namespace, not the replica count: scaling keeps uids
                uid=derive_uid({"template": template, "namespace": namespace}, node, pod_name),
                spec=pod_spec,
                labels=pod_labels,
                annotations=pod_annotations,
                source=source,
                owner=name,
                raw=raw,
            )
        )
    deployment = Deployment(
        name=name,
        namespace=namespace,
        replicas=replicas,
        selector=selector,
        pods=tuple(pods),
        labels=labels,
        source=source,
        raw=dict(doc),
    )
    return ManifestObject("Deployment", name, namespace, dict(doc), tuple(pods), deployment)
