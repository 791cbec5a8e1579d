"""The groups a container's processes run with: the CRI's SupplementalGroupsPolicy, once.

A process gets its primary gid (``run_as_group``, else the image's
/etc/passwd entry of its user) and a list of supplementary groups. The
policy decides that list:

* ``Merge`` (the default): the user's memberships in the image's
  /etc/group, the primary gid and ``supplemental_groups``. Docker and
  nerdctl do this themselves (both skip the image's memberships when a
  group is given explicitly, where containerd's CRI keeps them);
* ``Strict``: the primary gid and ``supplemental_groups`` only, so what a
  pod runs with does not depend on files in its image.

A shim that cannot give Strict for real (Docker 20.10 always adds the
image's memberships, for the first process and for exec) does not claim
the feature, and core refuses Strict with UNIMPLEMENTED there rather than
silently running it as Merge (:func:`check_policy_supported`). This rule
and the engines' renderings of the user (shims' convert/args modules) are
meant to live together in :mod:`pycri.core.security`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.core.linux import read_if_present
from pycri.errors import InvalidArgumentError, UnimplementedError

__all__ = [
    "ProcessIdentity",
    "check_policy_supported",
    "groups_policy",
    "image_memberships",
    "process_groups",
    "process_user",
    "resolve_identity",
]

_POLICIES = frozenset(cri.SupplementalGroupsPolicy.values())


def groups_policy(
    context: cri.LinuxContainerSecurityContext,
    field: str = "config.linux.security_context",
) -> cri.SupplementalGroupsPolicy:
    """The policy asked for; INVALID_ARGUMENT for a value the CRI does not define."""
    policy = context.supplemental_groups_policy
    if policy not in _POLICIES:
        raise InvalidArgumentError(
            f"{field}.supplemental_groups_policy {policy} is not Merge (0) or Strict (1)"
        )
    return policy


def check_policy_supported(
    context: cri.LinuxContainerSecurityContext,
    supported: bool,
    runtime: str,
    field: str = "config.linux.security_context",
) -> None:
    """UNIMPLEMENTED for Strict on a runtime that would run it as Merge.

    The request is well formed; this runtime cannot honour it (the kubelet
    does not send Strict to a node whose runtime does not report the feature).
    """
    if groups_policy(context, field) == cri.Strict and not supported:
        raise UnimplementedError(
            f"{field}.supplemental_groups_policy Strict is not supported by the {runtime} "
            "runtime: it always adds the groups the image's /etc/group gives the user "
            "(use Merge, or a runtime handler that reports the feature)"
        )


def _unique(groups: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(groups))  # first occurrence kept, in order


def process_groups(
    policy: cri.SupplementalGroupsPolicy,
    gid: int,
    supplemental_groups: Sequence[int],
    image_groups: Sequence[int] = (),
) -> list[int]:
    """The supplementary groups (OCI ``additionalGids``) of the container's processes.

    ``gid`` is the primary gid as the engine resolved it, ``image_groups``
    the user's memberships in the image's /etc/group (ignored by Strict).
    The primary gid comes first, as containerd puts it; no group twice.
    """
    merged = image_groups if policy == cri.Merge else ()
    return _unique([gid, *merged, *supplemental_groups])


def image_memberships(user: str, group_file: str) -> list[int]:
    """The gids of the /etc/group lines (text ``group_file``) listing ``user`` as a member."""
    if not user:
        return []  # an empty member list splits into [""]
    rows = _entries(group_file, 4)  # comments, NIS "+" lines, broken entries: skipped
    return _unique(int(row[2]) for row in rows if user in row[3].split(","))


def _entries(text: str, fields: int) -> list[list[str]]:
    """The well-formed lines of /etc/passwd or /etc/group, split (comments, NIS lines out)."""
    rows = [line.split(":") for line in text.splitlines()]
    return [row for row in rows if len(row) >= fields and row[2].isdigit()]


@dataclass(frozen=True)
class ProcessIdentity:
    """Who a container's processes are: OCI ``process.user``."""

    uid: int
    gid: int
    #: supplementary groups (``additionalGids``), the primary gid first
    groups: tuple[int, ...]


def resolve_identity(
    context: cri.LinuxContainerSecurityContext,
    passwd: str = "",
    group: str = "",
    image_user: str = "",
) -> ProcessIdentity:
    """The identity the CRI asks for, resolved against the image's files, as runc-based
    runtimes do it: ``passwd``/``group`` are the image's /etc/passwd and /etc/group
    texts, ``image_user`` its config's ``User`` (``uid``, ``name``, ``uid:gid``...).

    The CRI's user (``run_as_user``, else ``run_as_username``, as in
    core.security) replaces the image's; ``run_as_group`` replaces the gid of
    either. Merge adds the user's memberships (by name) in the image's
    /etc/group, whatever decided the gid, as containerd's CRI does.
    """
    user_part, group_part = "", ""
    if context.HasField("run_as_user"):
        user_part = str(context.run_as_user.value)
    elif context.run_as_username:
        user_part = context.run_as_username
    elif image_user:
        user_part, _, group_part = image_user.partition(":")
    key = user_part or "0"
    name, uid, gid = "", 0, 0
    for row in _entries(passwd, 4):
        if (row[2] if key.isdigit() else row[0]) == key:
            name, uid, gid = row[0], int(row[2]), int(row[3])
            break
    else:
        if not key.isdigit():
            raise InvalidArgumentError(f"user {key!r} is not in the image's /etc/passwd")
        uid = int(key)  # a uid the image does not know: gid 0, no memberships
    if context.HasField("run_as_group"):
        gid = context.run_as_group.value
    elif group_part:
        gid = _group_id(group_part, group)
    memberships = image_memberships(name, group)
    groups = process_groups(groups_policy(context), gid, context.supplemental_groups, memberships)
    return ProcessIdentity(uid=uid, gid=gid, groups=tuple(groups))


def _group_id(ref: str, group_file: str) -> int:
    if ref.isdigit():
        return int(ref)
    for row in _entries(group_file, 3):
        if row[0] == ref:
            return int(row[2])
    raise InvalidArgumentError(f"image group {ref!r} is not in its /etc/group")


def process_user(pid: int, proc: str = "/proc") -> cri.LinuxContainerUser | None:
    """The real uid, gid and supplementary groups of a running process (None once gone)."""
    text = read_if_present(Path(proc) / str(pid) / "status")
    if text is None:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        uid = int(fields["Uid"].split()[0])
        gid = int(fields["Gid"].split()[0])
        groups = [int(g) for g in fields.get("Groups", "").split()]
    except (KeyError, IndexError, ValueError):
        return None
    return cri.LinuxContainerUser(uid=uid, gid=gid, supplemental_groups=groups)
