"""Engine names for Kubernetes-shaped metadata: valid, deterministic, collision-free."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycri.api import api_pb2 as cri
from pycri.core.engine_names import (
    CONTAINERD_NAMES,
    DOCKER_NAMES,
    NameRule,
    container_name,
    engine_name,
    sandbox_name,
)

UID = "3f8a6c1e-9b7d-4e2a-8c5f-0d1e2f3a4b5c"
RULES = [DOCKER_NAMES, CONTAINERD_NAMES]

#: the pods a node really runs, and the awkward ones Kubernetes allows
PODS = {
    "deployment": cri.PodSandboxMetadata(
        name="coredns-5d78c9869d-x7k2p", namespace="kube-system", uid=UID
    ),
    "statefulset": cri.PodSandboxMetadata(name="etcd-0", namespace="kube-system", uid=UID),
    "longest": cri.PodSandboxMetadata(name="p" * 253, namespace="n" * 63, uid=UID, attempt=7),
    "dashes-and-dots": cri.PodSandboxMetadata(name="a--b..c.-d-.e", namespace="x--y", uid=UID),
    "upper-case": cri.PodSandboxMetadata(name="MyPod.A", namespace="Default", uid=UID.upper()),
    "no-namespace": cri.PodSandboxMetadata(name="web", uid=UID),
    "no-namespace-no-uid": cri.PodSandboxMetadata(name="web"),
    "long-a": cri.PodSandboxMetadata(name="x" * 200 + "-a", namespace="kube-system", uid=UID),
    "long-b": cri.PodSandboxMetadata(name="x" * 200 + "-b", namespace="kube-system", uid=UID),
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.engine)
@pytest.mark.parametrize("pod", PODS.values(), ids=list(PODS))
def test_every_kubernetes_shaped_name_is_accepted(
    rule: NameRule, pod: cri.PodSandboxMetadata
) -> None:
    container = cri.ContainerMetadata(name="c" * 63, attempt=3)
    for name in (sandbox_name(pod, rule), container_name(container, pod, rule)):
        assert rule.accepts(name), name


def test_containerd_rule_is_containerds() -> None:
    """The two facts the mapping exists for: 76 characters, no doubled separators."""
    assert CONTAINERD_NAMES.accepts("a" * 76)
    assert not CONTAINERD_NAMES.accepts("a" * 77)
    for bad in ("a--b", "a_-b", "a__b", "-a", "a.", "a b", "ä"):
        assert not CONTAINERD_NAMES.accepts(bad), bad
    assert DOCKER_NAMES.accepts("k8s_POD_web__uid_0")  # Docker takes doubled separators
    assert not DOCKER_NAMES.accepts("_web")


def test_short_valid_names_stay_dockershim_names() -> None:
    pod = cri.PodSandboxMetadata(name="web", namespace="default", uid="u1", attempt=2)
    assert sandbox_name(pod, CONTAINERD_NAMES) == "k8s_POD_web_default_u1_2"
    container = cri.ContainerMetadata(name="app", attempt=1)
    assert container_name(container, pod, CONTAINERD_NAMES) == "k8s_app_web_default_u1_1"
    deployment = PODS["deployment"]
    assert (
        sandbox_name(deployment, DOCKER_NAMES) == f"k8s_POD_{deployment.name}_kube-system_{UID}_0"
    )


def test_mapped_names_are_readable_and_deterministic() -> None:
    pod = PODS["deployment"]
    name = sandbox_name(pod, CONTAINERD_NAMES)
    assert len(name) <= 76
    assert name.startswith("k8s_POD_coredns-5d78c9869d-x7k2p_kube-system_")
    assert re.fullmatch(r".*-[0-9a-f]{16}", name)
    again = cri.PodSandboxMetadata.FromString(pod.SerializeToString())
    assert sandbox_name(again, CONTAINERD_NAMES) == name


def test_names_differing_only_at_the_end_stay_apart() -> None:
    a, b = PODS["long-a"], PODS["long-b"]
    for rule in RULES:
        assert sandbox_name(a, rule) != sandbox_name(b, rule)
    # the readable prefixes are the same: only the hash tells them apart
    name_a, name_b = sandbox_name(a, CONTAINERD_NAMES), sandbox_name(b, CONTAINERD_NAMES)
    assert name_a[:-17] == name_b[:-17]


def test_mapped_names_never_meet_dockershim_names() -> None:
    """A dockershim name ends in ``_<digits>``, a mapped one in ``-<hex>``."""
    mapped = engine_name("k8s_POD_a--b_n_u_0", CONTAINERD_NAMES)
    assert mapped.rsplit("-", 1)[0] == "k8s_POD_a-b_n_u_0"
    assert not re.fullmatch(r".*_[0-9]+", mapped)


identity_part = st.text(alphabet=st.sampled_from("abcXYZ019.-"), min_size=0, max_size=120).filter(
    lambda s: "_" not in s
)


@given(name=identity_part.filter(bool), namespace=identity_part, uid=identity_part)
def test_any_metadata_maps_to_an_accepted_name(name: str, namespace: str, uid: str) -> None:
    pod = cri.PodSandboxMetadata(name=name, namespace=namespace, uid=uid)
    for rule in RULES:
        assert rule.accepts(sandbox_name(pod, rule))


@given(st.lists(st.tuples(identity_part.filter(bool), identity_part), min_size=2, max_size=8))
def test_distinct_identities_get_distinct_names(pairs: list[tuple[str, str]]) -> None:
    pods = {cri.PodSandboxMetadata(name=n, namespace=ns).SerializeToString() for n, ns in pairs}
    names = {sandbox_name(cri.PodSandboxMetadata.FromString(raw), CONTAINERD_NAMES) for raw in pods}
    assert len(names) == len(pods)
