"""What the Docker shim does beyond the conformance suite, checked inside real containers."""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_docker_support import (
    REGISTRY,
    RUN_ID,
    container_config,
    delete_from_registry,
    docker_client,
    forget_pulled,
    our_containers,
    pod_config,
    remove_leftovers,
    scratch_dir,
    wait_for,
)

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.engine import KIND_LABEL, METADATA_LABEL
from pycri.core.logs import parse_log_line
from pycri.core.runtime import CRIRuntime
from pycri.errors import (
    CRIError,
    DeadlineExceededError,
    FailedPreconditionError,
    UnimplementedError,
)
from pycri.server.server import CRIServer
from pycri.shim import PullProgress
from pycri_shims.docker import DockerShim
from pycri_shims.docker.images import auth_header_config

pytestmark = pytest.mark.real

#: critest's image: its /etc/group makes default-user (1000) a member of group 50000
GROUP_IMAGE = "gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest"


@dataclass
class Endpoint:
    """A pycri server on the Docker shim, in process, and what the tests made with it."""

    client: CRIClient
    shim: DockerShim
    sdk: Any
    scratch: Path
    pods: list[str] = field(default_factory=list)

    def run_pod(self, name: str, **config: Any) -> tuple[str, cri.PodSandboxConfig]:
        """Run a pod; ``config`` sets message fields (or extends repeated ones)."""
        pod = pod_config(name, self.scratch / "logs")
        for key, value in config.items():
            if isinstance(value, list):
                getattr(pod, key).extend(value)
            else:
                getattr(pod, key).CopyFrom(value)
        pod_id = self.client.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod)).pod_sandbox_id
        self.pods.append(pod_id)
        return pod_id, pod

    def start(self, pod_id: str, pod: cri.PodSandboxConfig, config: cri.ContainerConfig) -> str:
        container_id = self.client.create_container(
            cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod)
        ).container_id
        self.client.start_container(cri.StartContainerRequest(container_id=container_id))
        return container_id

    def sleeper(
        self, pod_id: str, pod: cri.PodSandboxConfig, name: str = "app", **fields: Any
    ) -> str:
        return self.start(pod_id, pod, container_config(name, ["sleep", "300"], **fields))

    def sh(self, container_id: str, script: str, timeout: int = 10) -> cri.ExecSyncResponse:
        return self.client.exec_sync(
            cri.ExecSyncRequest(
                container_id=container_id, cmd=["sh", "-c", script], timeout=timeout
            )
        )

    def out(self, container_id: str, script: str) -> str:
        result = self.sh(container_id, script)
        assert result.exit_code == 0, result.stderr
        return result.stdout.decode().strip()

    def status(self, container_id: str) -> cri.ContainerStatus:
        return self.client.container_status(
            cri.ContainerStatusRequest(container_id=container_id)
        ).status

    def wait_exited(self, container_id: str) -> cri.ContainerStatus:
        wait_for(lambda: self.status(container_id).state == cri.CONTAINER_EXITED, 30, "the exit")
        return self.status(container_id)

    def cleanup(self) -> None:
        for pod_id in self.pods:
            self.client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            self.client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        self.pods.clear()


@pytest.fixture(scope="module")
def served() -> Iterator[Endpoint]:
    sdk = docker_client()
    shim = DockerShim()
    runtime = CRIRuntime(shim, allow_privileged=True)
    with scratch_dir() as scratch:
        server = CRIServer(runtime, f"unix://{scratch / 'cri.sock'}").start()
        client = CRIClient(server.address, timeout=60)
        try:
            yield Endpoint(client, shim, sdk, scratch)
        finally:
            client.close()
            server.stop(grace=1)
            runtime.close()
            left = remove_leftovers(sdk)
            forget_pulled(sdk)
            sdk.close()
            assert not left, f"containers left behind: {left}"


@pytest.fixture
def env(served: Endpoint) -> Iterator[Endpoint]:
    try:
        yield served
    finally:
        served.cleanup()


def host_ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def pause_pid(env: Endpoint, pod_id: str) -> int:
    return int(env.sdk.api.inspect_container(pod_id)["State"]["Pid"])


# -- sandboxes and namespaces -------------------------------------------------


def test_containers_join_the_pod(env: Endpoint) -> None:
    pod_id, pod = env.run_pod("join")
    first = env.sleeper(pod_id, pod, "first")
    second = env.sleeper(pod_id, pod, "second")
    private = env.sleeper(
        pod_id,
        pod,
        "private",
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(
                namespace_options=cri.NamespaceOption(pid=cri.CONTAINER)
            )
        ),
    )
    pause = pause_pid(env, pod_id)
    for kind in ("net", "ipc"):
        expected = host_ns(pause, kind)
        for container_id in (first, second, private):
            assert env.out(container_id, f"readlink /proc/self/ns/{kind}") == expected, kind
    # CRI semantics: pid POD (the zero value) shares the pause container's PID namespace
    assert env.out(first, "readlink /proc/self/ns/pid") == host_ns(pause, "pid")
    assert env.out(first, 'tr -d "\\\\0" < /proc/1/cmdline') == "/pause"
    assert env.out(private, "readlink /proc/self/ns/pid") != host_ns(pause, "pid")
    # Docker has no container:<id> UTS mode: each container gets the pod's hostname
    assert {env.out(c, "hostname") for c in (first, second, private)} == {"join"}

    status = env.client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    ip = status.status.network.ip
    assert ip
    assert ip in env.out(first, "ip -o -4 addr show eth0")
    assert status.status.linux.namespaces.options.network == cri.POD


def test_host_namespaces(env: Endpoint) -> None:
    node = cri.NamespaceOption(network=cri.NODE, pid=cri.NODE, ipc=cri.NODE)
    pod_id, pod = env.run_pod(
        "host",
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(namespace_options=node)
        ),
    )
    container_id = env.sleeper(
        pod_id,
        pod,
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(namespace_options=node)
        ),
    )
    for kind in ("net", "pid", "ipc", "uts"):
        assert env.out(container_id, f"readlink /proc/self/ns/{kind}") == host_ns("self", kind), (
            kind
        )
    status = env.client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    assert status.status.network.ip == ""
    assert status.status.linux.namespaces.options == node


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_port_mapping(env: Endpoint) -> None:
    port = free_port()
    mapping = cri.PortMapping(protocol=cri.TCP, container_port=8080, host_port=port)
    pod_id, pod = env.run_pod("ports", port_mappings=[mapping])
    env.start(
        pod_id,
        pod,
        container_config("web", ["sh", "-c", "while true; do echo hello | nc -l -p 8080; done"]),
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                return conn.recv(16).startswith(b"hello")
        except OSError:
            return False

    wait_for(answers, 20, f"an answer on host port {port}", interval=0.2)


def test_dns_config_in_resolv_conf(env: Endpoint) -> None:
    dns = cri.DNSConfig(servers=["10.11.12.13"], searches=["pycri.test"], options=["ndots:2"])
    pod_id, pod = env.run_pod("dns", dns_config=dns)
    resolv = env.out(env.sleeper(pod_id, pod), "cat /etc/resolv.conf").splitlines()
    assert "nameserver 10.11.12.13" in resolv
    assert "search pycri.test" in resolv
    assert "options ndots:2" in resolv


# -- container config -----------------------------------------------------------


def test_env_mounts_workdir_user_and_readonly_rootfs(env: Endpoint) -> None:
    shared = env.scratch / f"shared-{RUN_ID}"
    (shared / "rw").mkdir(parents=True)
    (shared / "ro").mkdir()
    (shared / "ro" / "hello").write_text("from the host\n")
    os.chmod(shared / "rw", 0o777)
    pod_id, pod = env.run_pod("config")
    container_id = env.sleeper(
        pod_id,
        pod,
        envs=[cri.KeyValue(key="COLOUR", value="green")],
        working_dir="/rw",
        mounts=[
            cri.Mount(container_path="/rw", host_path=str(shared / "rw")),
            cri.Mount(container_path="/ro", host_path=str(shared / "ro"), readonly=True),
        ],
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(
                run_as_user=cri.Int64Value(value=1234),
                run_as_group=cri.Int64Value(value=2345),
                supplemental_groups=[3456],
                readonly_rootfs=True,
            )
        ),
    )
    assert env.out(container_id, "echo $COLOUR; pwd; id -u; id -g; id -G") == (
        "green\n/rw\n1234\n2345\n2345 3456"
    )
    assert env.out(container_id, "cat /ro/hello") == "from the host"
    assert env.sh(container_id, "touch /ro/nope").exit_code != 0
    assert env.sh(container_id, "touch /nope").exit_code != 0  # read-only root fs
    assert env.out(container_id, "echo written > /rw/out && echo ok") == "ok"
    assert (shared / "rw" / "out").read_text() == "written\n"

    status = env.status(container_id)
    mounts = {m.container_path: m for m in status.mounts}
    assert mounts["/ro"].readonly
    assert not mounts["/rw"].readonly
    assert mounts["/ro"].host_path == str(shared / "ro")
    assert (status.user.linux.uid, status.user.linux.gid) == (1234, 2345)
    # the running init's, as the kernel lists them (Docker adds the primary gid)
    assert sorted(status.user.linux.supplemental_groups) == [2345, 3456]


def test_strict_supplemental_groups_are_refused(env: Endpoint) -> None:
    """Docker 20.10 always adds the image's /etc/group memberships: Strict is not run as Merge."""
    assert not env.client.status().features.supplemental_groups_policy
    pod_id, pod = env.run_pod("strict")
    before = {c["Id"] for c in our_containers(env.sdk)}
    context = cri.LinuxContainerSecurityContext(
        run_as_user=cri.Int64Value(value=1000),
        supplemental_groups=[1234],
        supplemental_groups_policy=cri.Strict,
    )
    with pytest.raises(UnimplementedError, match="Strict is not supported by the docker runtime"):
        env.sleeper(pod_id, pod, "strict", linux=cri.LinuxContainerConfig(security_context=context))
    assert {c["Id"] for c in our_containers(env.sdk)} == before  # nothing created
    # Merge, the default, runs: the image's group (50000) included
    context.supplemental_groups_policy = cri.Merge
    merged = env.start(
        pod_id,
        pod,
        container_config(
            "merge",
            ["sleep", "300"],
            image=GROUP_IMAGE,
            linux=cri.LinuxContainerConfig(security_context=context),
        ),
    )
    assert env.out(merged, "id -G") == "1000 1234 50000"
    assert sorted(env.status(merged).user.linux.supplemental_groups) == [1000, 1234, 50000]


def cap_eff(env: Endpoint, container_id: str) -> int:
    line = env.out(container_id, "grep CapEff /proc/self/status")
    return int(line.split()[1], 16)


def test_privileged_and_capabilities(env: Endpoint) -> None:
    pod_id, pod = env.run_pod("caps")
    privileged = env.sleeper(
        pod_id,
        pod,
        "privileged",
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(privileged=True)
        ),
    )
    # mounting needs CAP_SYS_ADMIN and no seccomp/AppArmor confinement
    assert env.out(privileged, "mkdir -p /m && mount -t tmpfs none /m && echo mounted") == "mounted"
    sys_admin = 1 << 21
    assert cap_eff(env, privileged) & sys_admin
    assert (
        env.out(privileged, "test -c /dev/kmsg && test -c /dev/loop-control && echo devices")
        == "devices"
    )

    narrow = env.sleeper(
        pod_id,
        pod,
        "narrow",
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(
                capabilities=cri.Capability(
                    drop_capabilities=["ALL"], add_capabilities=["NET_RAW", "CAP_CHOWN"]
                )
            )
        ),
    )
    assert cap_eff(env, narrow) == (1 << 13) | (1 << 0)


def test_resources_and_oom_killed(env: Endpoint) -> None:
    pod_id, pod = env.run_pod("oom")
    limits = cri.LinuxContainerResources(
        memory_limit_in_bytes=8 * 1024 * 1024, cpu_shares=512, cpu_quota=50000, cpu_period=100000
    )
    hog = env.start(
        pod_id,
        pod,
        container_config(
            "hog",
            ["sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived"],
            linux=cri.LinuxContainerConfig(resources=limits),
        ),
    )
    status = env.wait_exited(hog)
    assert (status.reason, status.exit_code) == ("OOMKilled", 137)
    got = status.resources.linux
    assert (got.memory_limit_in_bytes, got.cpu_shares, got.cpu_quota, got.cpu_period) == (
        8 * 1024 * 1024,
        512,
        50000,
        100000,
    )
    host = env.sdk.api.inspect_container(hog)["HostConfig"]
    assert host["MemorySwap"] == 8 * 1024 * 1024  # no swap on top, as Kubernetes means
    assert host["OomScoreAdj"] >= 0


# -- logs and exec ----------------------------------------------------------------


def read_log(path: Path) -> list[Any]:
    return [parse_log_line(raw) for raw in path.read_bytes().splitlines()]


def test_log_file_in_cri_format(env: Endpoint) -> None:
    pod_id, pod = env.run_pod("logs")
    script = "echo out; echo err >&2; head -c 40000 /dev/zero | tr '\\0' a; echo; printf tail"
    container_id = env.start(pod_id, pod, container_config("talk", ["sh", "-c", script]))
    status = env.wait_exited(container_id)
    path = Path(status.log_path)
    assert path == Path(pod.log_directory) / "talk.log"

    def complete() -> bool:
        return path.exists() and b"tail" in path.read_bytes()

    wait_for(complete, 10, "the whole log")
    lines = read_log(path)
    by_stream = {(ln.stream, ln.message) for ln in lines if len(ln.message) < 100}
    assert {("stdout", b"out"), ("stderr", b"err"), ("stdout", b"tail")} <= by_stream
    long = [ln for ln in lines if ln.message.startswith(b"aaaa")]
    # Docker cuts a long line into pieces of at most 16 KiB (where exactly depends on
    # how the output was read): all P but the last, F
    assert len(long) >= 3
    assert [ln.partial for ln in long] == [True] * (len(long) - 1) + [False]
    assert max(len(ln.message) for ln in long) <= 16 * 1024
    assert b"".join(ln.message for ln in long) == b"a" * 40000
    assert lines[-1].partial  # no newline at the very end: a piece, not a line


def test_exited_means_its_log_is_complete(env: Endpoint) -> None:
    """EXITED only once the CRI log holds the last output: critest reads it at once."""
    pod_id, pod = env.run_pod("lastwords")
    for attempt in range(10):
        name = f"say{attempt}"
        words = f"last words {attempt}"
        container_id = env.start(pod_id, pod, container_config(name, ["echo", words]))
        env.wait_exited(container_id)
        log = Path(pod.log_directory) / f"{name}.log"
        assert [ln.message for ln in read_log(log)] == [words.encode()], attempt


def numbered(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(ln.message.split()[1]) for ln in read_log(path) if ln.message.startswith(b"n ")]


def test_reopen_log_loses_and_repeats_nothing(env: Endpoint) -> None:
    pod_id, pod = env.run_pod("rotate")
    script = "i=0; while true; do echo n $i; i=$((i+1)); sleep 0.05; done"
    container_id = env.start(pod_id, pod, container_config("tick", ["sh", "-c", script]))
    path = Path(pod.log_directory) / "tick.log"
    wait_for(lambda: len(numbered(path)) >= 10, 15, "ten lines")
    rotated = path.with_name("tick.log.1")
    path.rename(rotated)
    env.client.reopen_container_log(cri.ReopenContainerLogRequest(container_id=container_id))
    assert path.exists()
    wait_for(lambda: len(numbered(path)) >= 10, 15, "ten lines in the new file")
    env.client.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=0))
    together = numbered(rotated) + numbered(path)
    assert together == list(range(len(together)))


def test_exec_sync_timeout_kills_the_command(env: Endpoint) -> None:
    pod_id, pod = env.run_pod("exec")
    container_id = env.sleeper(pod_id, pod)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        env.client.exec_sync(
            cri.ExecSyncRequest(
                container_id=container_id, cmd=["sh", "-c", "sleep 31; echo late"], timeout=1
            )
        )
    assert time.monotonic() - started < 5
    assert "sleep 31" not in env.out(container_id, "ps -o args")
    result = env.sh(container_id, "echo out; echo err >&2; exit 7")
    assert (result.stdout, result.stderr, result.exit_code) == (b"out\n", b"err\n", 7)


def test_stats(env: Endpoint) -> None:
    pod_id, pod = env.run_pod("stats")
    script = (
        "dd if=/dev/zero of=/blob bs=1M count=2 2>/dev/null; x=$(head -c 4m /dev/zero); sleep 300"
    )
    container_id = env.start(pod_id, pod, container_config("busy", ["sh", "-c", script]))
    wait_for(lambda: env.sh(container_id, "test -s /blob").exit_code == 0, 10, "the blob")
    stats = env.client.container_stats(cri.ContainerStatsRequest(container_id=container_id)).stats
    assert stats.attributes.metadata.name == "busy"
    assert stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0
    assert stats.writable_layer.used_bytes.value >= 2 * 1024 * 1024

    pod_stats = env.client.pod_sandbox_stats(
        cri.PodSandboxStatsRequest(pod_sandbox_id=pod_id)
    ).stats
    assert [c.attributes.id for c in pod_stats.linux.containers] == [container_id]
    assert pod_stats.linux.network.default_interface.name == "eth0"
    (member,) = pod_stats.linux.containers
    # one sample: the pod's usage sums its container's and the pause container's
    assert pod_stats.linux.memory.working_set_bytes.value >= member.memory.working_set_bytes.value
    assert pod_stats.linux.cpu.usage_core_nano_seconds.value >= (
        member.cpu.usage_core_nano_seconds.value
    )
    assert pod_stats.linux.process.process_count.value >= 2  # pause and sleep


def test_update_container_resources(env: Endpoint) -> None:
    pod_id, pod = env.run_pod("update")
    container_id = env.sleeper(pod_id, pod)
    env.client.update_container_resources(
        cri.UpdateContainerResourcesRequest(
            container_id=container_id,
            linux=cri.LinuxContainerResources(cpu_shares=300, memory_limit_in_bytes=64 << 20),
        )
    )
    got = env.status(container_id).resources.linux
    assert (got.cpu_shares, got.memory_limit_in_bytes) == (300, 64 << 20)


def test_list_window_shares_a_call_and_sees_own_changes(
    served: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    shim = DockerShim(list_window=60)
    runtime = CRIRuntime(shim)
    api = shim.connection.api
    calls: list[object] = []
    real = api.containers

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("filters"))
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "containers", counted)
    pod = pod_config("window", served.scratch / "logs")
    pod_id = runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod)).pod_sandbox_id
    try:
        calls.clear()
        pods = runtime.list_pod_sandbox(cri.ListPodSandboxRequest()).items
        runtime.list_containers(cri.ListContainersRequest())
        assert pod_id in {p.id for p in pods}
        # one Docker call answered the whole relist (start-up's log resume lists on its own)
        snapshot = {"label": [KIND_LABEL, METADATA_LABEL]}
        assert [f for f in calls if f == snapshot] == [snapshot]
        assert not [f for f in calls if "podsandbox" in str(f)]
        container_id = runtime.create_container(
            cri.CreateContainerRequest(
                pod_sandbox_id=pod_id,
                config=container_config("late", ["sleep", "60"]),
                sandbox_config=pod,
            )
        ).container_id
        listed = runtime.list_containers(cri.ListContainersRequest()).containers
        assert container_id in {c.id for c in listed}  # a change through the shim is seen
    finally:
        runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        runtime.close()


#: Docker API requests each lifecycle RPC may make (issue #16; the SDK alone makes
#: 2 for RunPodSandbox and 1 for each of the others). Core's checks cost the rest:
#: the name checks list (Run, Create), the state checks inspect (shared with the
#: shim's own inspect within the RPC), stopping and removing a pod list its containers.
LIFECYCLE_CALLS = {
    "RunPodSandbox": [
        "GET /containers/json",
        "POST /containers/create",
        "POST /containers/{id}/start",
    ],
    "CreateContainer": [
        "GET /containers/{id}/json",
        "GET /containers/json",
        "POST /containers/create",
    ],
    "StartContainer": ["GET /containers/{id}/json", "POST /containers/{id}/start"],
    "StopContainer": ["GET /containers/{id}/json", "POST /containers/{id}/stop"],
    "RemoveContainer": ["GET /containers/{id}/json", "DELETE /containers/{id}"],
    "StopPodSandbox": [
        "GET /containers/json",
        "GET /containers/{id}/json",
        "POST /containers/{id}/stop",
    ],
    "RemovePodSandbox": [
        "GET /containers/json",
        "GET /containers/{id}/json",
        "DELETE /containers/{id}",
    ],
}


def test_lifecycle_makes_few_docker_calls(
    served: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # its own state dir: image trees of other tests would make RemoveContainer prune
    shim = DockerShim(state_dir=str(served.scratch / "calls-state"))
    runtime = CRIRuntime(shim)
    made: dict[str, list[str]] = {}
    finish = shim.connection.counter.finish

    def keep() -> None:
        rpc = shim.connection.counter.serving()
        made[rpc] = shim.connection.counter.current()
        finish()

    monkeypatch.setattr(shim.connection.counter, "finish", keep)
    pod = pod_config("calls", served.scratch / "logs")
    pod_id = runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod)).pod_sandbox_id
    try:
        container_id = runtime.create_container(
            cri.CreateContainerRequest(
                pod_sandbox_id=pod_id,
                config=container_config("app", ["sleep", "60"]),
                sandbox_config=pod,
            )
        ).container_id
        runtime.start_container(cri.StartContainerRequest(container_id=container_id))
        runtime.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=0))
        runtime.remove_container(cri.RemoveContainerRequest(container_id=container_id))
    finally:
        runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    try:
        assert {rpc: made[rpc] for rpc in LIFECYCLE_CALLS} == LIFECYCLE_CALLS
        # the totals are in Status verbose, as crictl info shows them
        info = runtime.status(cri.StatusRequest(verbose=True)).info
        totals = json.loads(info["dockerCalls"])
        for rpc, calls in LIFECYCLE_CALLS.items():
            assert totals[rpc]["calls"] == len(calls)
        # one connection pool for every URL (docker-py would make one per URL), and the
        # one of the version negotiation made before it
        api = shim.connection.api
        assert len(api.get_adapter(api.base_url).pools) <= 2
    finally:
        runtime.close()


# -- sandboxes: the pause image ------------------------------------------------------


def test_missing_pause_image_is_a_clear_error(served: Endpoint) -> None:
    shim = DockerShim(pause_image=f"127.0.0.1:5000/pycri/no-such-pause:{RUN_ID}")
    try:
        with pytest.raises(FailedPreconditionError, match=r"pause image .* cannot be pulled"):
            shim.run_pod_sandbox(pod_config("nopause", served.scratch), "")
    finally:
        shim.close()


# -- images ------------------------------------------------------------------------


@pytest.fixture
def pushed_image(served: Endpoint) -> Iterator[str]:
    """An image of this run's own (1 MiB of random bytes) in the local registry, not local."""
    payload = os.urandom(1 << 20)  # incompressible: the pull really downloads
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        entry = tarfile.TarInfo("blob")
        entry.size = len(payload)
        tar.addfile(entry, io.BytesIO(payload))
    repository, tag = f"{REGISTRY}/pycri/docker-progress", RUN_ID
    served.sdk.api.import_image_from_data(archive.getvalue(), repository=repository, tag=tag)
    try:
        for event in served.sdk.api.push(repository, tag, stream=True, decode=True):
            assert "error" not in event, event
        served.sdk.api.remove_image(f"{repository}:{tag}")
        yield f"{repository}:{tag}"
    finally:
        delete_from_registry("pycri/docker-progress", tag)
        for image in served.sdk.images.list(name=repository):
            served.sdk.api.remove_image(image.id, force=True)


def test_pull_progress_and_remove_every_tag(env: Endpoint, pushed_image: str) -> None:
    spec = cri.ImageSpec(image=pushed_image)
    assert not env.client.image_status(cri.ImageStatusRequest(image=spec)).HasField("image")

    seen: list[PullProgress] = []
    ref = env.shim.pull_image(pushed_image, None, seen.append)
    assert ref.startswith("sha256:")
    downloads = [p for p in seen if p.total_bytes > 0]
    assert downloads, [p.status for p in seen]
    assert downloads[-1].current_bytes == downloads[-1].total_bytes > 0

    extra = f"{REGISTRY}/pycri/extra-{RUN_ID}"
    env.sdk.api.tag(pushed_image, extra, "v1")
    image = env.client.image_status(cri.ImageStatusRequest(image=spec)).image
    assert f"{extra}:v1" in image.repo_tags
    assert pushed_image in image.repo_tags
    assert image.id == ref

    env.client.remove_image(cri.RemoveImageRequest(image=cri.ImageSpec(image=f"{extra}:v1")))
    tags = {tag for i in env.sdk.images.list() for tag in i.tags}
    assert not {f"{extra}:v1", pushed_image} & tags
    assert not [i for i in env.sdk.images.list() if i.id == ref]
    assert not env.client.image_status(cri.ImageStatusRequest(image=spec)).HasField("image")


def test_concurrent_removes_of_one_image_all_succeed(env: Endpoint, pushed_image: str) -> None:
    """The kubelet's image GC and a user may race; one of them finding it gone is no error."""
    image_id = env.shim.pull_image(pushed_image, None, lambda step: None)
    spec = cri.ImageSpec(image=image_id)
    errors: list[Exception] = []

    def remove() -> None:
        try:
            env.client.remove_image(cri.RemoveImageRequest(image=spec))
        except CRIError as err:
            errors.append(err)

    threads = [threading.Thread(target=remove) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert not env.client.image_status(cri.ImageStatusRequest(image=spec)).HasField("image")


def test_auth_config_mapping() -> None:
    auth = cri.AuthConfig(auth="dXNlcjpzM2NyZXQ=", identity_token="tok")
    assert auth_header_config(auth, "registry.example") == {
        "username": "user",
        "password": "s3cret",
        "serveraddress": "registry.example",
        "identitytoken": "tok",
    }
    full = cri.AuthConfig(
        username="u", password="p", server_address="r.example", registry_token="rt"
    )
    assert auth_header_config(full, "ignored") == {
        "username": "u",
        "password": "p",
        "serveraddress": "r.example",
        "registrytoken": "rt",
    }
