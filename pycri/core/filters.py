"""CRI list filters, applied once for every shim.

Semantics follow containerd's CRI plugin: ``id`` matches a prefix of the
id, ``state`` an exact state, ``pod_sandbox_id`` a prefix of the pod id,
and every ``label_selector`` pair must be present with the same value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pycri.api import api_pb2 as cri

__all__ = [
    "filter_containers",
    "filter_images",
    "filter_pod_sandboxes",
    "labels_match",
]


def labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def filter_pod_sandboxes(
    pods: Iterable[cri.PodSandbox], f: cri.PodSandboxFilter | None
) -> list[cri.PodSandbox]:
    if f is None:
        return list(pods)
    has_state = f.HasField("state")
    return [
        pod
        for pod in pods
        if pod.id.startswith(f.id)
        and (not has_state or pod.state == f.state.state)
        and labels_match(pod.labels, f.label_selector)
    ]


def filter_containers(
    containers: Iterable[cri.Container], f: cri.ContainerFilter | None
) -> list[cri.Container]:
    if f is None:
        return list(containers)
    has_state = f.HasField("state")
    return [
        c
        for c in containers
        if c.id.startswith(f.id)
        and c.pod_sandbox_id.startswith(f.pod_sandbox_id)
        and (not has_state or c.state == f.state.state)
        and labels_match(c.labels, f.label_selector)
    ]


def filter_images(images: Iterable[cri.Image], wanted: str | None) -> list[cri.Image]:
    """Images whose tags, digests or id match the normalised ``wanted``."""
    if not wanted:
        return list(images)
    return [img for img in images if image_matches(img, wanted)]


def image_matches(image: cri.Image, ref: str) -> bool:
    """Whether ``ref`` (normalised reference, id or id prefix) names ``image``."""
    if ref in image.repo_tags or ref in image.repo_digests:
        return True
    bare_id = image.id.removeprefix("sha256:")
    bare_ref = ref.removeprefix("sha256:")
    return (
        len(bare_ref) >= 12
        and all(c in "0123456789abcdef" for c in bare_ref)
        and (bare_id.startswith(bare_ref))
    )
