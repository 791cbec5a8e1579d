"""Engine container names from CRI metadata, within what each engine accepts.

The dockershim name (``k8s_POD_<pod>_<ns>_<uid>_<attempt>``) says who a
container is, but engines limit names: containerd (and so nerdctl) takes at
most 76 characters of ``^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$``, while an
ordinary ``kube-system`` Deployment pod already needs 83, and Kubernetes pod
names go up to 253 characters and may hold ``--`` or ``.-``. An engine name
is therefore a mapping, never the identity (that lives in labels):

- a dockershim name the engine accepts is used as it is (readable, and what
  ``docker ps`` users know);
- any other becomes a readable prefix of it plus ``-`` and 16 hex digits of
  its SHA-256.

The mapping is deterministic and collision-free: dockershim names are
distinct for distinct identities (core's validation keeps ``_`` out of
their parts), a dockershim name always ends in ``_<attempt>`` while a
mapped one ends in ``-<hex>``, so the two kinds never meet, and two mapped
names are equal only if 64 bits of their hashes are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pycri.api import api_pb2 as cri

__all__ = [
    "CONTAINERD_NAMES",
    "DOCKER_NAMES",
    "NameRule",
    "container_name",
    "engine_name",
    "sandbox_name",
]

_HASH_DIGITS = 16


@dataclass(frozen=True)
class NameRule:
    """The container names one engine accepts."""

    engine: str
    pattern: re.Pattern[str]
    #: characters allowed between two alphanumeric runs
    separators: str
    max_length: int

    def accepts(self, name: str) -> bool:
        return len(name) <= self.max_length and self.pattern.fullmatch(name) is not None


#: moby's ``validContainerNamePattern``; Docker sets no length limit of its own
DOCKER_NAMES = NameRule(
    engine="docker",
    pattern=re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+"),
    separators="_.-",
    max_length=1024,
)
#: containerd's identifier rule (``pkg/identifiers``), which nerdctl applies to names
CONTAINERD_NAMES = NameRule(
    engine="containerd",
    pattern=re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*"),
    separators="._-",
    max_length=76,
)


def engine_name(identity: str, rule: NameRule) -> str:
    """``identity`` if ``rule`` accepts it, else a readable prefix plus its hash."""
    if rule.accepts(identity):
        return identity
    digest = hashlib.sha256(identity.encode()).hexdigest()[:_HASH_DIGITS]
    budget = rule.max_length - _HASH_DIGITS - 1
    readable = _readable(identity, rule.separators)[:budget]
    readable = readable.rstrip(rule.separators)
    return f"{readable}-{digest}" if readable else f"k8s-{digest}"


def _readable(text: str, separators: str) -> str:
    """``text`` in the rule's alphabet: other characters become ``-``, one separator at a time."""
    out: list[str] = []
    for char in text:
        if char.isascii() and char.isalnum():
            out.append(char)
        elif out and out[-1] not in separators:
            out.append(char if char in separators else "-")
    return "".join(out)


def sandbox_name(meta: cri.PodSandboxMetadata, rule: NameRule) -> str:
    """The engine name of a pod's pause container."""
    return engine_name(f"k8s_POD_{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}", rule)


def container_name(meta: cri.ContainerMetadata, pod: cri.PodSandboxMetadata, rule: NameRule) -> str:
    """The engine name of an app container."""
    identity = f"k8s_{meta.name}_{pod.name}_{pod.namespace}_{pod.uid}_{meta.attempt}"
    return engine_name(identity, rule)
