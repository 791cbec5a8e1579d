"""The CRI's security contexts, resolved once in core (pycri/core/security.py), rendered by
each engine shim: the resolution table, then the same requests through Docker's HostConfig and
nerdctl's flags, with no daemon."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.linux import bounding_capabilities
from pycri.core.security import (
    Confinement,
    PidNamespace,
    Profile,
    SecuritySpec,
    apparmor_profile,
    container_security,
    ipc_sysctls,
    oom_score_adj,
    pid_namespace,
    sandbox_security,
    seccomp_profile,
)
from pycri.core.validation import validate_container_config, validate_pod_sandbox_config
from pycri.errors import InvalidArgumentError
from pycri_shims.docker.convert import container_body
from pycri_shims.nerdctl.args import container_args

UNCONFINED = Profile(Confinement.UNCONFINED)
DEFAULT = Profile(Confinement.RUNTIME_DEFAULT)
RUNTIME_DEFAULT = cri.SecurityProfile(profile_type=cri.SecurityProfile.RuntimeDefault)


@pytest.mark.parametrize(
    ("field", "legacy", "seccomp", "apparmor"),
    [
        # nil: seccomp unconfined (the CRI's rule), AppArmor the runtime's default
        (None, "", UNCONFINED, DEFAULT),
        (None, "unconfined", UNCONFINED, UNCONFINED),
        (None, "runtime/default", DEFAULT, DEFAULT),
        (None, "docker/default", DEFAULT, DEFAULT),
        (None, "localhost/p", Profile(Confinement.LOCALHOST, "p"), None),
        # the field wins over the legacy string, whatever it says
        (RUNTIME_DEFAULT, "unconfined", DEFAULT, DEFAULT),
        (cri.SecurityProfile(profile_type=cri.SecurityProfile.Unconfined), "", UNCONFINED, None),
        (
            cri.SecurityProfile(
                profile_type=cri.SecurityProfile.Localhost, localhost_ref="/x.json"
            ),
            "runtime/default",
            Profile(Confinement.LOCALHOST, "/x.json"),
            None,
        ),
    ],
)
def test_precedence(
    field: cri.SecurityProfile | None,
    legacy: str,
    seccomp: Profile,
    apparmor: Profile | None,
) -> None:
    assert seccomp_profile(field, legacy) == seccomp
    assert apparmor_profile(field, legacy) == (apparmor or seccomp)


@pytest.mark.parametrize(
    ("field", "legacy"),
    [
        (None, "localhost/"),
        (None, "whatever"),
        (cri.SecurityProfile(profile_type=cri.SecurityProfile.Localhost), ""),
    ],
)
def test_bad_profiles_are_invalid(field: cri.SecurityProfile | None, legacy: str) -> None:
    with pytest.raises(InvalidArgumentError):
        seccomp_profile(field, legacy)


def _container(ctx: cri.LinuxContainerSecurityContext) -> cri.ContainerConfig:
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="c"),
        image=cri.ImageSpec(image="busybox"),
        linux=cri.LinuxContainerConfig(security_context=ctx),
    )


def _docker_opts(ctx: cri.LinuxContainerSecurityContext) -> list[str]:
    body = container_body(_container(ctx), sandbox_id="pod", sandbox_host={}, labels={})
    return list(body["HostConfig"]["SecurityOpt"])


def _nerdctl_opts(ctx: cri.LinuxContainerSecurityContext) -> list[str]:
    args = container_args(
        _container(ctx), cri.PodSandboxConfig(), "pod", "n", {}, "busybox", ipc_join=False
    )
    return [args[i + 1] for i, arg in enumerate(args) if arg == "--security-opt"]


@pytest.mark.parametrize("render", [_docker_opts, _nerdctl_opts], ids=["docker", "nerdctl"])
def test_both_shims_render_the_same_rules(
    render: Callable[[cri.LinuxContainerSecurityContext], list[str]],
) -> None:
    """They used to disagree: nil seccomp got the engine's default profile on both."""
    assert render(cri.LinuxContainerSecurityContext()) == ["seccomp=unconfined"]
    assert render(cri.LinuxContainerSecurityContext(seccomp=RUNTIME_DEFAULT)) == []
    new_wins = cri.LinuxContainerSecurityContext(
        seccomp=RUNTIME_DEFAULT, seccomp_profile_path="unconfined", apparmor=RUNTIME_DEFAULT
    )
    assert render(new_wins) == []
    legacy = cri.LinuxContainerSecurityContext(
        seccomp_profile_path="runtime/default", apparmor_profile="unconfined"
    )
    assert render(legacy) == ["apparmor=unconfined"]


# -- the whole context -----------------------------------------------------------

HOST = ("CHOWN", "KILL", "NET_ADMIN")  # a host whose bounding set is not full
CTX = cri.LinuxContainerSecurityContext
CAPS = cri.Capability


def _spec(**fields: Any) -> SecuritySpec:
    return container_security(CTX(**fields), host_capabilities=lambda: HOST)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, SecuritySpec()),
        ({"run_as_user": cri.Int64Value(value=0)}, SecuritySpec(user="0")),
        ({"run_as_username": "nobody"}, SecuritySpec(user="nobody")),
        # the uid wins over the name, as in the kubelet's order
        (
            {"run_as_user": cri.Int64Value(value=7), "run_as_username": "nobody"},
            SecuritySpec(user="7"),
        ),
        (
            {"run_as_user": cri.Int64Value(value=7), "run_as_group": cri.Int64Value(value=0)},
            SecuritySpec(user="7:0"),
        ),
        (
            {"run_as_username": "nobody", "run_as_group": cri.Int64Value(value=9)},
            SecuritySpec(user="nobody:9"),
        ),
        ({"supplemental_groups": [5, 6]}, SecuritySpec(supplemental_groups=(5, 6))),
        (
            {"supplemental_groups": [5], "supplemental_groups_policy": cri.Strict},
            SecuritySpec(supplemental_groups=(5,), strict_groups=True),
        ),
        (
            {"capabilities": CAPS(add_capabilities=["net_raw", "CAP_SYS_TIME"])},
            SecuritySpec(cap_add=("CAP_NET_RAW", "CAP_SYS_TIME")),
        ),
        # ALL added is the host's set: Docker and runc fail on a capability it lacks
        (
            {"capabilities": CAPS(add_capabilities=["ALL"])},
            SecuritySpec(cap_add=("CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN")),
        ),
        (
            {"capabilities": CAPS(drop_capabilities=["all"])},
            SecuritySpec(cap_drop=("ALL",)),
        ),
        (
            {"privileged": True, "capabilities": CAPS(drop_capabilities=["KILL"])},
            SecuritySpec(
                privileged=True,
                cap_add=("CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"),
                apparmor=Profile(Confinement.UNCONFINED),
                masked_paths=(),
                readonly_paths=(),
            ),
        ),
        # privileged overrides the profiles and paths asked for
        (
            {
                "privileged": True,
                "seccomp": RUNTIME_DEFAULT,
                "masked_paths": ["/proc/kcore"],
                "no_new_privs": True,
            },
            SecuritySpec(
                privileged=True,
                cap_add=("CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"),
                apparmor=Profile(Confinement.UNCONFINED),
                no_new_privs=True,
                masked_paths=(),
                readonly_paths=(),
            ),
        ),
        ({"no_new_privs": True}, SecuritySpec(no_new_privs=True)),
        ({"readonly_rootfs": True}, SecuritySpec(readonly_rootfs=True)),
        (
            {"masked_paths": ["/a"], "readonly_paths": ["/b", "/c"]},
            SecuritySpec(masked_paths=("/a",), readonly_paths=("/b", "/c")),
        ),
        (
            {"selinux_options": cri.SELinuxOption(user="u", level="s0:c1")},
            SecuritySpec(selinux=("user:u", "level:s0:c1")),
        ),
    ],
)
def test_container_resolution(fields: dict[str, Any], expected: SecuritySpec) -> None:
    assert _spec(**fields) == expected


def test_sandbox_resolution() -> None:
    ctx = cri.LinuxSandboxSecurityContext(
        run_as_user=cri.Int64Value(value=65535),
        run_as_group=cri.Int64Value(value=65535),
        supplemental_groups=[1],
        readonly_rootfs=True,
        seccomp_profile_path="runtime/default",
    )
    assert sandbox_security(ctx) == SecuritySpec(
        user="65535:65535",
        supplemental_groups=(1,),
        readonly_rootfs=True,
        seccomp=Profile(Confinement.RUNTIME_DEFAULT),
    )
    privileged = sandbox_security(cri.LinuxSandboxSecurityContext(privileged=True))
    assert privileged.privileged
    assert privileged.seccomp == Profile(Confinement.UNCONFINED)


@pytest.mark.parametrize(
    ("mode", "target", "pod", "expected"),
    [
        (cri.POD, "", cri.POD, (PidNamespace.POD, "")),
        (cri.POD, "", cri.NODE, (PidNamespace.HOST, "")),
        (cri.CONTAINER, "", cri.NODE, (PidNamespace.CONTAINER, "")),
        (cri.NODE, "", cri.POD, (PidNamespace.HOST, "")),
        (cri.TARGET, "abc", cri.POD, (PidNamespace.TARGET, "abc")),
    ],
)
def test_pid_namespace(
    mode: int, target: str, pod: int, expected: tuple[PidNamespace, str]
) -> None:
    ns = cri.NamespaceOption(pid=mode, target_id=target)  # type: ignore[arg-type]
    assert pid_namespace(ns, cri.NamespaceOption(pid=pod)) == expected  # type: ignore[arg-type]


def test_target_needs_an_id() -> None:
    with pytest.raises(InvalidArgumentError, match="target_id"):
        pid_namespace(cri.NamespaceOption(pid=cri.TARGET))


def test_oom_score_adj_is_only_raised() -> None:
    assert oom_score_adj(cri.LinuxContainerResources(oom_score_adj=-998)) is None
    assert oom_score_adj(cri.LinuxContainerResources()) is None
    assert oom_score_adj(cri.LinuxContainerResources(oom_score_adj=1000)) == 1000


def test_ipc_sysctls() -> None:
    given = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "9"}
    assert list(ipc_sysctls(given).items()) == [("fs.mqueue.msg_max", "9"), ("kernel.shmmax", "1")]


def test_a_group_without_a_user_is_refused() -> None:
    """nerdctl used to run it as 0:<gid>, docker refused it: core refuses it for both."""
    group = cri.Int64Value(value=5)
    with pytest.raises(InvalidArgumentError, match="run_as_group"):
        validate_container_config(_container(CTX(run_as_group=group)))
    sandbox = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="p", namespace="n", uid="u"),
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(run_as_group=group)
        ),
    )
    with pytest.raises(InvalidArgumentError, match="run_as_group"):
        validate_pod_sandbox_config(sandbox)


# -- the same requests, rendered by both engine shims -----------------------------


def _docker(ctx: cri.LinuxContainerSecurityContext) -> dict[str, Any]:
    body = container_body(_container(ctx), sandbox_id="pod", sandbox_host={}, labels={})
    host = body["HostConfig"]
    return {
        "user": body.get("User", ""),
        "groups": host.get("GroupAdd", []),
        "add": host.get("CapAdd", []),
        "drop": host.get("CapDrop", []),
        "opts": host["SecurityOpt"],
        "readonly": host["ReadonlyRootfs"],
        "masked": host.get("MaskedPaths"),
        "pid": host["PidMode"],
    }


def _flag(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def _nerdctl(ctx: cri.LinuxContainerSecurityContext) -> dict[str, Any]:
    args = container_args(
        _container(ctx), cri.PodSandboxConfig(), "pod", "n", {}, "busybox", ipc_join=False
    )
    add = _flag(args, "--cap-add")
    drop = _flag(args, "--cap-drop")
    return {
        "user": "".join(_flag(args, "--user")),
        "groups": _flag(args, "--group-add"),
        "add": [f"CAP_{c}" for c in add[0].split(",")] if add else [],
        "drop": [c if c == "ALL" else f"CAP_{c}" for c in drop[0].split(",")] if drop else [],
        "opts": _flag(args, "--security-opt"),
        "readonly": "--read-only" in args,
        # nerdctl has no flag for paths: specedit's wrapper gets them (tested there)
        "masked": None,
        "pid": "".join(_flag(args, "--pid")),
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {},
            {"user": "", "groups": [], "add": [], "drop": [], "opts": ["seccomp=unconfined"]},
        ),
        (
            {
                "run_as_user": cri.Int64Value(value=1000),
                "run_as_group": cri.Int64Value(value=3000),
                "supplemental_groups": [4000],
            },
            {"user": "1000:3000", "groups": ["4000"]},
        ),
        (
            {
                "capabilities": CAPS(add_capabilities=["sys_admin"], drop_capabilities=["ALL"]),
                "no_new_privs": True,
                "seccomp": RUNTIME_DEFAULT,
            },
            {"add": ["CAP_SYS_ADMIN"], "drop": ["ALL"], "opts": ["no-new-privileges"]},
        ),
        ({"readonly_rootfs": True}, {"readonly": True}),
        (
            {"namespace_options": cri.NamespaceOption(pid=cri.CONTAINER)},
            {"pid": ""},
        ),
    ],
)
def test_both_shims_render_the_same_spec(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    ctx = CTX(**fields)
    docker, nerdctl = _docker(ctx), _nerdctl(ctx)
    for key, value in expected.items():
        assert docker[key] == value, key
        assert nerdctl[key] == value, key


def test_privileged_is_rendered_from_the_host_set_on_both() -> None:
    """Not ``--privileged``/``Privileged: true``: they ask for capabilities the host may lack."""
    ctx = CTX(privileged=True, masked_paths=["/x"])
    docker, nerdctl = _docker(ctx), _nerdctl(ctx)
    host = [f"CAP_{name}" for name in bounding_capabilities()]
    assert docker["add"] == nerdctl["add"] == host
    for opts in (docker["opts"], nerdctl["opts"]):
        assert sorted(opts) == ["apparmor=unconfined", "seccomp=unconfined"]
    assert docker["masked"] == []


def test_pid_modes_of_both_shims() -> None:
    pod = CTX(namespace_options=cri.NamespaceOption(pid=cri.POD))
    assert _docker(pod)["pid"] == _nerdctl(pod)["pid"] == "container:pod"
    target = CTX(namespace_options=cri.NamespaceOption(pid=cri.TARGET, target_id="t1"))
    assert _docker(target)["pid"] == _nerdctl(target)["pid"] == "container:t1"
    node = CTX(namespace_options=cri.NamespaceOption(pid=cri.NODE))
    assert _docker(node)["pid"] == _nerdctl(node)["pid"] == "host"
