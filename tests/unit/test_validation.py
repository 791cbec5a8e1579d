from __future__ import annotations

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.validation import (
    require_id,
    validate_container_config,
    validate_exec_cmd,
    validate_linux_resources,
    validate_pod_sandbox_config,
)
from pycri.errors import InvalidArgumentError

META = cri.PodSandboxMetadata(name="web", namespace="default", uid="1234-abcd")


def test_good_pod_config_passes() -> None:
    validate_pod_sandbox_config(
        cri.PodSandboxConfig(
            metadata=META,
            hostname="web-0",
            log_directory="/var/log/pods/x",
            labels={"app": "web"},
            port_mappings=[cri.PortMapping(container_port=80, host_port=8080)],
        )
    )


def test_namespace_and_uid_may_be_empty() -> None:
    validate_pod_sandbox_config(cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name="x")))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (cri.PodSandboxConfig(), "config.metadata"),
        (cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(namespace="n", uid="u")), "name"),
        (
            cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name="x", namespace="a_b")),
            "namespace",
        ),
        (cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name="x", uid="-u")), "uid"),
        (cri.PodSandboxConfig(metadata=META, hostname="bad host"), "hostname"),
        (cri.PodSandboxConfig(metadata=META, labels={"": "v"}), "labels"),
        (cri.PodSandboxConfig(metadata=META, annotations={"k": "a\x00b"}), "annotations"),
        (
            cri.PodSandboxConfig(
                metadata=cri.PodSandboxMetadata(name="x" * 254, namespace="n", uid="u")
            ),
            "longer than 253",
        ),
    ],
)
def test_bad_pod_config_names_the_field(config: cri.PodSandboxConfig, field: str) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        validate_pod_sandbox_config(config)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"metadata": None}, "config.metadata"),
        ({"image": None}, "config.image"),
        ({"image": cri.ImageSpec(image="")}, "config.image.image"),
        ({"working_dir": "relative"}, "working_dir"),
        ({"mounts": [cri.Mount(container_path="/d", host_path="rel")]}, "host_path"),
        ({"log_path": "/abs.log"}, "log_path"),
        ({"command": ["a\x00"]}, "command"),
    ],
)
def test_bad_container_config_names_the_field(overrides: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "metadata": cri.ContainerMetadata(name="c"),
        "image": cri.ImageSpec(image="busybox"),
    }
    fields.update(overrides)
    with pytest.raises(InvalidArgumentError, match=field):
        validate_container_config(cri.ContainerConfig(**fields))  # type: ignore[arg-type]


def test_ids_and_exec() -> None:
    assert require_id("abc", "x") == "abc"
    with pytest.raises(InvalidArgumentError, match="x is required"):
        require_id("", "x")
    with pytest.raises(InvalidArgumentError, match="not a valid id"):
        require_id("a" * 300, "x")
    with pytest.raises(InvalidArgumentError, match="cmd is required"):
        validate_exec_cmd([])
    with pytest.raises(InvalidArgumentError, match="empty"):
        validate_exec_cmd([""])


def test_a_group_without_a_user_is_refused() -> None:
    """containerd and the CRI refuse it; nerdctl would quietly run it as 0:<gid>."""
    group = cri.Int64Value(value=1002)
    container = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="c"),
        image=cri.ImageSpec(image="busybox"),
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(run_as_group=group)
        ),
    )
    with pytest.raises(InvalidArgumentError, match="run_as_group is set without run_as_user"):
        validate_container_config(container)
    container.linux.security_context.run_as_username = "www-data"
    validate_container_config(container)
    container.linux.security_context.ClearField("run_as_username")
    container.linux.security_context.run_as_user.value = 0
    validate_container_config(container)

    pod = cri.PodSandboxConfig(
        metadata=META,
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(run_as_group=group)
        ),
    )
    with pytest.raises(
        InvalidArgumentError, match=r"^config\.linux\.security_context\.run_as_group"
    ):
        validate_pod_sandbox_config(pod)


R = cri.LinuxContainerResources
GIB = 1 << 30


@pytest.mark.parametrize(
    "resources",
    [
        R(),
        # what the kubelet sends for a Guaranteed pod, and for its RuntimeClass overhead
        R(cpu_period=100_000, cpu_quota=50_000, cpu_shares=512, memory_limit_in_bytes=GIB),
        R(cpu_shares=2, memory_limit_in_bytes=128 << 20, memory_swap_limit_in_bytes=128 << 20),
        # unlimited, as read back from a pod cgroup (-1), less a pod overhead
        R(cpu_period=100_000, cpu_quota=-1, memory_limit_in_bytes=-1),
        R(cpu_period=100_000, cpu_quota=-25_001, memory_limit_in_bytes=-(120 << 20) - 1),
        R(cpu_quota=100),  # a limit of 1m less the overhead's quota
        R(memory_limit_in_bytes=GIB, memory_swap_limit_in_bytes=-1),
        R(oom_score_adj=-997),
        R(cpuset_cpus="0-3,6,8-9", cpuset_mems="0"),
        R(hugepage_limits=[cri.HugepageLimit(page_size="2MB", limit=GIB)]),
        R(unified={"memory.high": "1073741824", "cpu.max": "max 100000"}),
        R(unified={"hugetlb.2MB.max": "0", "memory.swap.max": "0"}),
    ],
)
def test_resources_the_kubelet_sends_pass(resources: cri.LinuxContainerResources) -> None:
    validate_linux_resources(resources, "resources")


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        (R(cpu_period=-1), "resources.cpu_period"),
        (R(cpu_period=999), "resources.cpu_period"),
        (R(cpu_period=1_000_001), "resources.cpu_period"),
        (R(cpu_shares=-2), "resources.cpu_shares"),
        (R(cpu_shares=1), "resources.cpu_shares"),
        (R(cpu_shares=262_145), "resources.cpu_shares"),
        (R(oom_score_adj=1001), "resources.oom_score_adj"),
        (R(memory_limit_in_bytes=GIB, memory_swap_limit_in_bytes=GIB - 1), "memory_swap"),
        (R(cpuset_cpus="0-"), "resources.cpuset_cpus"),
        (R(cpuset_cpus="3-1"), "resources.cpuset_cpus"),
        (R(cpuset_cpus="0-3\n"), "resources.cpuset_cpus"),
        (R(cpuset_mems="all"), "resources.cpuset_mems"),
        (R(hugepage_limits=[cri.HugepageLimit(page_size="huge")]), "page_size"),
        (
            R(hugepage_limits=[cri.HugepageLimit(page_size="2MB")] * 2),
            "resources.hugepage_limits[1]",
        ),
        (R(unified={"../../etc/passwd": "x"}), "resources.unified key"),
        (R(unified={"memory..high": "1"}), "resources.unified key"),
        (R(unified={"memory": "1"}), "resources.unified key"),
        (R(unified={"memory.high": "1\nmemory.max 2"}), "resources.unified"),
    ],
)
def test_bad_resources_name_the_field(resources: cri.LinuxContainerResources, field: str) -> None:
    with pytest.raises(InvalidArgumentError, match=field.replace("[", r"\[").replace("]", r"\]")):
        validate_linux_resources(resources, "resources")
