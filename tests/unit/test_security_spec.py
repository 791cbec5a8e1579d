"""The CRI's seccomp/AppArmor precedence, resolved once in core, rendered by each shim."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.security import Confinement, Profile, apparmor_profile, seccomp_profile
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
