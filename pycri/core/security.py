"""The CRI's Linux security contexts, resolved once into an engine-neutral spec.

A pod's or container's ``security_context`` has several sources for one
fact and rules that every runtime must apply alike: the seccomp/AppArmor
``SecurityProfile`` fields against the deprecated strings, ``ALL`` in the
capability lists, what ``privileged`` switches off, which empty list means
"the runtime's default", which namespace a container joins. They are
decided here, once; :class:`SecuritySpec` is plain data, and each engine
shim only renders it (Docker's HostConfig in ``shims/docker/convert.py``,
nerdctl's flags in ``shims/nerdctl/args.py``). Table tests of both
renderings live in ``tests/unit/test_security_spec.py``.

The rules, and where they come from:

- seccomp: the ``seccomp`` field wins over ``seccomp_profile_path``; with
  neither, **unconfined** (the CRI says so, and the kubelet always sends the
  profile it wants).
- AppArmor: the ``apparmor`` field wins over ``apparmor_profile``; with
  neither, the runtime's default profile (containerd's CRI does that).
- privileged: every capability the host can grant (``Privileged: true``
  asks for all of them and fails on hosts whose bounding set lacks some),
  none dropped, seccomp and AppArmor unconfined, no masked or read-only
  paths.
- capabilities: names upper-cased with ``CAP_``; ``ALL`` added means the
  host's bounding set, for the same reason; ``ALL`` dropped stays ``ALL``.
- masked/read-only paths: an empty list means the runtime's default (Go's
  protobuf cannot tell an empty list from an absent one; the kubelet sends
  the list it wants, or none for ``procMount: Unmasked`` with privileged).
- user: ``run_as_user`` wins over ``run_as_username``; ``run_as_group``
  needs one of them (core validation refuses it alone, rather than running
  as ``0:<gid>``). Which groups a process gets under each
  SupplementalGroupsPolicy is pycri/core/identity.py's rule.
- PID namespace: POD (the zero value) shares the pod's, NODE the host's,
  CONTAINER its own, TARGET another container's (``target_id`` required).
- oom_score_adj: only raising it is passed on; lowering needs
  CAP_SYS_RESOURCE, which some hosts' bounding sets lack (containerd's
  ``restrict_oom_score_adj`` does the same).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from pycri.api import api_pb2 as cri
from pycri.core.identity import groups_policy
from pycri.core.linux import bounding_capabilities
from pycri.errors import InvalidArgumentError

__all__ = [
    "Confinement",
    "PidNamespace",
    "Profile",
    "SecuritySpec",
    "apparmor_profile",
    "container_security",
    "ipc_sysctls",
    "oom_score_adj",
    "pid_namespace",
    "sandbox_security",
    "seccomp_profile",
]

_LOCALHOST = "localhost/"
#: the sysctls an IPC namespace has (Kubernetes' list of namespaced IPC sysctls)
_IPC_SYSCTLS = ("kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")
_SELINUX_PARTS = ("user", "role", "type", "level")


class Confinement(Enum):
    UNCONFINED = "unconfined"
    RUNTIME_DEFAULT = "runtime/default"
    #: a profile named by the request: a file's path (seccomp) or a loaded name (AppArmor)
    LOCALHOST = "localhost"


@dataclass(frozen=True)
class Profile:
    confinement: Confinement
    #: the localhost profile's path or name; empty otherwise
    ref: str = ""


UNCONFINED = Profile(Confinement.UNCONFINED)


@dataclass(frozen=True)
class SecuritySpec:
    """What a container (or a pod's sandbox) runs with, every CRI rule applied."""

    #: ``uid``, ``name``, ``uid:gid`` or ``name:gid``; empty for the image's user
    user: str = ""
    supplemental_groups: tuple[int, ...] = ()
    #: SupplementalGroupsPolicy Strict: only the primary and these groups, none of the
    #: image's /etc/group memberships (pycri/core/identity.py)
    strict_groups: bool = False
    privileged: bool = False
    #: capability names with ``CAP_`` (``ALL`` already resolved against the host)
    cap_add: tuple[str, ...] = ()
    #: capability names with ``CAP_``, or ``ALL``
    cap_drop: tuple[str, ...] = ()
    seccomp: Profile = UNCONFINED
    apparmor: Profile = Profile(Confinement.RUNTIME_DEFAULT)
    no_new_privs: bool = False
    readonly_rootfs: bool = False
    #: None: the runtime's default list; () for none at all
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    #: SELinux label parts as ``user:x``, ``role:y``...
    selinux: tuple[str, ...] = ()


def seccomp_profile(field: cri.SecurityProfile | None, legacy: str) -> Profile:
    """The seccomp profile asked for; nil means unconfined."""
    return _resolve("seccomp", field, legacy, unset=Confinement.UNCONFINED)


def apparmor_profile(field: cri.SecurityProfile | None, legacy: str) -> Profile:
    """The AppArmor profile asked for; nil means the runtime's default."""
    return _resolve("apparmor", field, legacy, unset=Confinement.RUNTIME_DEFAULT)


def _resolve(
    kind: str, field: cri.SecurityProfile | None, legacy: str, *, unset: Confinement
) -> Profile:
    if field is not None:
        if field.profile_type == cri.SecurityProfile.Unconfined:
            return Profile(Confinement.UNCONFINED)
        if field.profile_type == cri.SecurityProfile.Localhost:
            if not field.localhost_ref:
                raise InvalidArgumentError(f"{kind}: a Localhost profile needs localhost_ref")
            return Profile(Confinement.LOCALHOST, field.localhost_ref)
        return Profile(Confinement.RUNTIME_DEFAULT)
    if not legacy:
        return Profile(unset)
    if legacy == "unconfined":
        return Profile(Confinement.UNCONFINED)
    if legacy in ("runtime/default", "docker/default"):
        return Profile(Confinement.RUNTIME_DEFAULT)
    if legacy.startswith(_LOCALHOST) and len(legacy) > len(_LOCALHOST):
        return Profile(Confinement.LOCALHOST, legacy.removeprefix(_LOCALHOST))
    raise InvalidArgumentError(
        f"{kind} profile {legacy!r} is not one of runtime/default, unconfined, localhost/<ref>"
    )


def _user(
    ctx: cri.LinuxSandboxSecurityContext | cri.LinuxContainerSecurityContext, username: str
) -> str:
    user = str(ctx.run_as_user.value) if ctx.HasField("run_as_user") else username
    if user and ctx.HasField("run_as_group"):  # core validation refused a group alone
        user += f":{ctx.run_as_group.value}"
    return user


def _capability(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") or name == "ALL" else f"CAP_{name}"


def _selinux(
    ctx: cri.LinuxSandboxSecurityContext | cri.LinuxContainerSecurityContext,
) -> tuple[str, ...]:
    if not ctx.HasField("selinux_options"):
        return ()
    options = ctx.selinux_options
    return tuple(
        f"{part}:{getattr(options, part)}" for part in _SELINUX_PARTS if getattr(options, part)
    )


def _field(
    ctx: cri.LinuxSandboxSecurityContext | cri.LinuxContainerSecurityContext, name: str
) -> cri.SecurityProfile | None:
    profile: cri.SecurityProfile = getattr(ctx, name)
    return profile if ctx.HasField(name) else None


def sandbox_security(ctx: cri.LinuxSandboxSecurityContext) -> SecuritySpec:
    """The pod's sandbox (pause) process: a user, groups and profiles, no capabilities."""
    spec = SecuritySpec(
        user=_user(ctx, ""),
        supplemental_groups=tuple(ctx.supplemental_groups),
        seccomp=seccomp_profile(_field(ctx, "seccomp"), ctx.seccomp_profile_path),
        apparmor=apparmor_profile(_field(ctx, "apparmor"), ""),
        readonly_rootfs=ctx.readonly_rootfs,
        selinux=_selinux(ctx),
    )
    return _privileged(spec, bounding_capabilities) if ctx.privileged else spec


def container_security(
    ctx: cri.LinuxContainerSecurityContext,
    host_capabilities: Callable[[], Iterable[str]] = bounding_capabilities,
) -> SecuritySpec:
    """An app container; ``host_capabilities`` gives the bounding set's names (no ``CAP_``)."""
    spec = SecuritySpec(
        user=_user(ctx, ctx.run_as_username),
        supplemental_groups=tuple(ctx.supplemental_groups),
        strict_groups=groups_policy(ctx) == cri.Strict,
        seccomp=seccomp_profile(_field(ctx, "seccomp"), ctx.seccomp_profile_path),
        apparmor=apparmor_profile(_field(ctx, "apparmor"), ctx.apparmor_profile),
        no_new_privs=ctx.no_new_privs,
        readonly_rootfs=ctx.readonly_rootfs,
        selinux=_selinux(ctx),
    )
    if ctx.privileged:
        return _privileged(spec, host_capabilities)
    add = tuple(_capability(c) for c in ctx.capabilities.add_capabilities)
    if "ALL" in add:
        add = tuple(f"CAP_{name}" for name in host_capabilities())
    return replace(
        spec,
        cap_add=add,
        cap_drop=tuple(_capability(c) for c in ctx.capabilities.drop_capabilities),
        masked_paths=tuple(ctx.masked_paths) or None,
        readonly_paths=tuple(ctx.readonly_paths) or None,
    )


def _privileged(spec: SecuritySpec, host_capabilities: Callable[[], Iterable[str]]) -> SecuritySpec:
    return replace(
        spec,
        privileged=True,
        cap_add=tuple(f"CAP_{name}" for name in host_capabilities()),
        cap_drop=(),
        seccomp=UNCONFINED,
        apparmor=UNCONFINED,
        masked_paths=(),
        readonly_paths=(),
    )


class PidNamespace(Enum):
    POD = "pod"
    CONTAINER = "container"
    HOST = "host"
    TARGET = "target"


def pid_namespace(
    ns: cri.NamespaceOption, pod: cri.NamespaceOption | None = None
) -> tuple[PidNamespace, str]:
    """The PID namespace a container joins, and the target container's id for TARGET.

    POD resolves to HOST when ``pod`` (the sandbox's options) is on the host's.
    """
    if ns.pid == cri.NODE:
        return PidNamespace.HOST, ""
    if ns.pid == cri.CONTAINER:
        return PidNamespace.CONTAINER, ""
    if ns.pid == cri.TARGET:
        if not ns.target_id:
            raise InvalidArgumentError("namespace_options.pid is TARGET but target_id is empty")
        return PidNamespace.TARGET, ns.target_id
    if pod is not None and pod.pid == cri.NODE:
        return PidNamespace.HOST, ""
    return PidNamespace.POD, ""


def oom_score_adj(res: cri.LinuxContainerResources) -> int | None:
    """The oom_score_adj to ask the engine for; None leaves the engine's."""
    return res.oom_score_adj if res.oom_score_adj > 0 else None


def ipc_sysctls(sysctls: Mapping[str, str]) -> dict[str, str]:
    """The pod's sysctls that belong to its IPC namespace, sorted by name.

    An engine that cannot put a container in the pod's IPC namespace sets
    these in the container's own.
    """
    return {key: sysctls[key] for key in sorted(sysctls) if key.startswith(_IPC_SYSCTLS)}
