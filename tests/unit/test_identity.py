"""SupplementalGroupsPolicy (core.identity): the rule, the feature flag, Strict refusals."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.identity import (
    check_policy_supported,
    groups_policy,
    image_memberships,
    process_groups,
    process_user,
    resolve_identity,
)
from pycri.core.router import HandlerRouter
from pycri.core.runtime import CRIRuntime
from pycri.errors import InvalidArgumentError, UnimplementedError
from pycri_shims.fake import FakeShim

GROUP_IMAGE = "gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest"


@pytest.mark.parametrize(
    ("policy", "gid", "supplemental", "image_groups", "expected"),
    [
        # critest's two specs: uid 1000 (gid 1000) is in group 50000 in the image
        (cri.Merge, 1000, [1234], [50000], [1000, 50000, 1234]),
        (cri.Strict, 1000, [1234], [50000], [1000, 1234]),
        (cri.Merge, 0, [], [], [0]),
        (cri.Strict, 0, [], [10], [0]),
        # no group twice, the primary gid first
        (cri.Merge, 5, [7, 5, 7], [7, 9], [5, 7, 9]),
        (cri.Strict, 5, [7, 5, 7], [7, 9], [5, 7]),
    ],
)
def test_process_groups(
    policy: cri.SupplementalGroupsPolicy,
    gid: int,
    supplemental: list[int],
    image_groups: list[int],
    expected: list[int],
) -> None:
    assert process_groups(policy, gid, supplemental, image_groups) == expected


GROUP_FILE = """root:x:0:
wheel:x:10:root
default-user:x:1000:
group-defined-in-image:x:50000:default-user
both:x:60000:root,default-user
# comment
+nis
broken:x:notanumber:default-user
"""


@pytest.mark.parametrize(
    ("user", "expected"),
    [("default-user", [50000, 60000]), ("root", [10, 60000]), ("nobody", []), ("", [])],
)
def test_image_memberships(user: str, expected: list[int]) -> None:
    assert image_memberships(user, GROUP_FILE) == expected


PASSWD_FILE = """root:x:0:0:root:/root:/bin/sh
default-user:x:1000:1000::/home/default-user:/bin/sh
other:x:2000:2001::/:/bin/sh
"""
Ctx = cri.LinuxContainerSecurityContext
Int = cri.Int64Value


@pytest.mark.parametrize(
    ("context", "image_user", "expected"),
    [
        # critest's specs: uid 1000 from the CRI, gid from /etc/passwd
        (
            Ctx(run_as_user=Int(value=1000), supplemental_groups=[1234]),
            "",
            (1000, 1000, [1000, 50000, 60000, 1234]),
        ),
        (
            Ctx(
                run_as_user=Int(value=1000),
                supplemental_groups=[1234],
                supplemental_groups_policy=cri.Strict,
            ),
            "",
            (1000, 1000, [1000, 1234]),
        ),
        # the image's user, by uid or name, with or without a group
        (Ctx(), "1000", (1000, 1000, [1000, 50000, 60000])),
        (Ctx(), "default-user:10", (1000, 10, [10, 50000, 60000])),
        (Ctx(), "default-user:wheel", (1000, 10, [10, 50000, 60000])),
        (Ctx(supplemental_groups_policy=cri.Strict), "default-user:wheel", (1000, 10, [10])),
        # nothing: root, in wheel and both
        (Ctx(), "", (0, 0, [0, 10, 60000])),
        # the CRI's user replaces the image's; run_as_group keeps the memberships (Merge)
        (Ctx(run_as_username="other"), "1000", (2000, 2001, [2001])),
        (Ctx(run_as_user=Int(value=0), run_as_username="other"), "", (0, 0, [0, 10, 60000])),
        (
            Ctx(run_as_user=Int(value=1000), run_as_group=Int(value=3000)),
            "",
            (1000, 3000, [3000, 50000, 60000]),
        ),
        # a uid the image does not know: gid 0, no memberships
        (Ctx(run_as_user=Int(value=4242), supplemental_groups=[5]), "", (4242, 0, [0, 5])),
    ],
)
def test_resolve_identity(
    context: cri.LinuxContainerSecurityContext,
    image_user: str,
    expected: tuple[int, int, list[int]],
) -> None:
    who = resolve_identity(context, PASSWD_FILE, GROUP_FILE, image_user)
    assert (who.uid, who.gid, list(who.groups)) == expected


@pytest.mark.parametrize(
    ("context", "image_user", "message"),
    [
        (Ctx(run_as_username="nobody"), "", "user 'nobody' is not in the image's /etc/passwd"),
        (Ctx(), "ghost", "user 'ghost' is not in the image's /etc/passwd"),
        (Ctx(), "root:ghosts", "image group 'ghosts' is not in its /etc/group"),
    ],
)
def test_resolve_identity_of_unknown_names(
    context: cri.LinuxContainerSecurityContext, image_user: str, message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        resolve_identity(context, PASSWD_FILE, GROUP_FILE, image_user)


def test_unknown_policy_is_invalid() -> None:
    context = cri.LinuxContainerSecurityContext()
    context.supplemental_groups_policy = 7  # type: ignore[assignment]  # proto3 enums are open
    with pytest.raises(InvalidArgumentError, match="supplemental_groups_policy 7"):
        groups_policy(context)


def test_strict_needs_support() -> None:
    strict = cri.LinuxContainerSecurityContext(supplemental_groups_policy=cri.Strict)
    check_policy_supported(strict, True, "x")
    check_policy_supported(cri.LinuxContainerSecurityContext(), False, "x")  # Merge: always
    with pytest.raises(UnimplementedError, match="Strict is not supported by the docker runtime"):
        check_policy_supported(strict, False, "docker")


def test_process_user_of_this_process() -> None:
    user = process_user(os.getpid())
    assert user is not None
    assert (user.uid, user.gid) == (os.getuid(), os.getgid())
    assert sorted(user.supplemental_groups) == sorted(os.getgroups())


def test_process_user_of_a_gone_process(tmp_path: Path) -> None:
    assert process_user(4242, proc=str(tmp_path)) is None


# -- through the runtime (the fake simulates the rule) ---------------------------------


@pytest.fixture
def fake() -> Iterator[FakeShim]:
    shim = FakeShim(preload=["registry.k8s.io/pause:3.9", GROUP_IMAGE])
    yield shim
    shim.close()


def _pod(runtime: CRIRuntime, handler: str = "") -> str:
    meta = cri.PodSandboxMetadata(name=f"p{handler}", namespace="n", uid=f"u{handler}")
    config = cri.PodSandboxConfig(metadata=meta)
    request = cri.RunPodSandboxRequest(config=config, runtime_handler=handler)
    return runtime.run_pod_sandbox(request).pod_sandbox_id


def _create(runtime: CRIRuntime, pod_id: str, policy: cri.SupplementalGroupsPolicy) -> str:
    context = cri.LinuxContainerSecurityContext(
        run_as_user=cri.Int64Value(value=1000),
        supplemental_groups=[1234],
        supplemental_groups_policy=policy,
    )
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=f"c{policy}"),
        image=cri.ImageSpec(image=GROUP_IMAGE),
        command=["sleep", "60"],
        linux=cri.LinuxContainerConfig(security_context=context),
    )
    request = cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=config)
    return runtime.create_container(request).container_id


@pytest.mark.parametrize(
    ("policy", "groups", "id_g"),
    [
        (cri.Merge, [1000, 1234, 50000], b"1000 1234 50000\n"),
        (cri.Strict, [1000, 1234], b"1000 1234\n"),
    ],
)
def test_fake_runs_the_rule(
    fake: FakeShim, policy: cri.SupplementalGroupsPolicy, groups: list[int], id_g: bytes
) -> None:
    runtime = CRIRuntime(fake)
    assert runtime.status(cri.StatusRequest()).features.supplemental_groups_policy
    container_id = _create(runtime, _pod(runtime), policy)
    runtime.start_container(cri.StartContainerRequest(container_id=container_id))
    status = runtime.container_status(cri.ContainerStatusRequest(container_id=container_id))
    assert status.status.user.linux == cri.LinuxContainerUser(
        uid=1000, gid=1000, supplemental_groups=groups
    )
    done = runtime.exec_sync(cri.ExecSyncRequest(container_id=container_id, cmd=["id", "-G"]))
    assert done.stdout == id_g


def test_strict_is_refused_where_unsupported(fake: FakeShim) -> None:
    fake.strict_groups = False
    runtime = CRIRuntime(fake)
    assert not runtime.status(cri.StatusRequest()).features.supplemental_groups_policy
    pod_id = _pod(runtime)
    with pytest.raises(UnimplementedError, match="Strict is not supported by the fake runtime"):
        _create(runtime, pod_id, cri.Strict)
    assert fake.list_containers(None) == []  # refused before the shim was asked
    _create(runtime, pod_id, cri.Merge)


def test_router_claims_the_feature_only_if_every_handler_has_it(fake: FakeShim) -> None:
    other = FakeShim(preload=["registry.k8s.io/pause:3.9", GROUP_IMAGE])
    runtime = CRIRuntime(HandlerRouter({"full": fake, "merge-only": other}, default="full"))
    try:
        assert runtime.status(cri.StatusRequest()).features.supplemental_groups_policy
        other.strict_groups = False
        assert not runtime.status(cri.StatusRequest()).features.supplemental_groups_policy
        # per pod, its handler decides
        _create(runtime, _pod(runtime, "full"), cri.Strict)
        with pytest.raises(UnimplementedError, match="merge-only runtime"):
            _create(runtime, _pod(runtime, "merge-only"), cri.Strict)
    finally:
        runtime.close()
