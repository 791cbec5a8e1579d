"""What is specific to the nerdctl shim: CNI networking, namespaces, settings, costs, errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.linux import CAPABILITY_NAMES, bounding_capabilities
from pycri.core.runtime import CRIRuntime
from pycri.errors import (
    CRIError,
    DeadlineExceededError,
    NotFoundError,
    UnavailableError,
)
from pycri.server.server import CRIServer
from pycri.testing.conformance import wait_for
from pycri_shims.nerdctl import NerdctlOptions, NerdctlShim, specedit
from pycri_shims.nerdctl.testing import (
    created_fixture,  # noqa: F401 - a shared fixture
    nerdctl,
    ready_fixture,  # noqa: F401 - a shared fixture
    shim_fixture,  # noqa: F401 - a shared fixture
)

pytestmark = pytest.mark.real

BUSYBOX = "docker.io/library/busybox:latest"
#: critest's image: its /etc/group makes default-user (1000) a member of group 50000
GROUP_IMAGE = "gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest"


def serve(shim: NerdctlShim, directory: Path) -> tuple[CRIServer, CRIClient]:
    # host namespaces and privileged containers are tested here: allow them
    runtime = CRIRuntime(shim, allow_privileged=True)
    server = CRIServer(runtime, f"unix://{directory / 'cri.sock'}").start()
    return server, CRIClient(server.address, timeout=60)


class Pods:
    """Runs pods and containers with the shim and removes all of them afterwards."""

    def __init__(self, client: CRIClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.pods: list[str] = []

    def run(self, **fields: object) -> tuple[str, cri.PodSandboxConfig]:
        uid = uuid.uuid4().hex
        config = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=f"nt-{uid[:8]}", namespace="nerdctl", uid=uid),
            hostname=f"nt-{uid[:8]}",
            log_directory=str(self.root / uid),
            labels={"pycri.test": "nerdctl"},
            **fields,  # type: ignore[arg-type]
        )
        pod_id = self.client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        self.pods.append(pod_id)
        return pod_id, config

    def container(
        self,
        pod: tuple[str, cri.PodSandboxConfig],
        command: list[str],
        *,
        name: str = "app",
        start: bool = True,
        image: str = BUSYBOX,
        **fields: object,
    ) -> str:
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=name),
            image=cri.ImageSpec(image=image),
            command=command,
            log_path=f"{name}.log",
            **fields,  # type: ignore[arg-type]
        )
        container_id = self.client.create_container(
            cri.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1])
        ).container_id
        if start:
            self.client.start_container(cri.StartContainerRequest(container_id=container_id))
        return container_id

    def exec(self, container_id: str, *cmd: str) -> cri.ExecSyncResponse:
        return self.client.exec_sync(
            cri.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=20)
        )

    def status(self, container_id: str) -> cri.ContainerStatus:
        request = cri.ContainerStatusRequest(container_id=container_id)
        return self.client.container_status(request).status

    def wait_exited(self, container_id: str) -> cri.ContainerStatus:
        wait_for(lambda: self.status(container_id).state == cri.CONTAINER_EXITED, 30, "the exit")
        return self.status(container_id)

    def cleanup(self) -> None:
        for pod_id in self.pods:
            self.client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


@pytest.fixture(scope="module")
def client(shim: NerdctlShim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CRIClient]:
    server, client = serve(shim, tmp_path_factory.mktemp("nerdctl-shim"))
    yield client
    client.close()
    server.stop(grace=1.0)


@pytest.fixture
def pods(client: CRIClient, tmp_path: Path) -> Iterator[Pods]:
    factory = Pods(client, tmp_path / "logs")
    yield factory
    factory.cleanup()


def engine_inspect(object_id: str) -> dict[str, object]:
    found: list[dict[str, object]] = json.loads(nerdctl("container", "inspect", object_id))
    return found[0]


# -- networking ------------------------------------------------------------------


def test_pod_ip_comes_from_the_nerdctl_bridge(pods: Pods, client: CRIClient) -> None:
    # an annotation over containerd's 4096-byte label limit must not break the pod
    big = {"kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 20_000 + "}"}
    pod_id, _ = pods.run(annotations=big)
    status = client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert dict(status.annotations) == big
    listed = client.list_pod_sandbox(
        cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(id=pod_id))
    ).items
    assert [dict(p.annotations) for p in listed] == [big]
    settings = engine_inspect(pod_id)["NetworkSettings"]
    assert isinstance(settings, dict)
    assert status.network.ip == settings["IPAddress"]
    assert status.network.ip.startswith("10.4.0.")  # nerdctl's default bridge subnet
    assert status.linux.namespaces.options.network == cri.POD


def test_containers_share_the_pod_network(pods: Pods) -> None:
    pod = pods.run()
    server = pods.container(
        pod, ["sh", "-c", "while true; do echo hello-from-server | nc -l -p 8080; done"]
    )
    caller = pods.container(pod, ["sleep", "60"], name="caller")
    wait_for(lambda: b"8080" in pods.exec(server, "netstat", "-ltn").stdout, 10, "the listener")
    reply = pods.exec(caller, "nc", "127.0.0.1", "8080")
    assert reply.stdout == b"hello-from-server\n"
    # one UTS, resolv.conf and hosts file: the sandbox's
    assert pods.exec(caller, "hostname").stdout.decode().strip() == pod[1].hostname


def test_port_mapping_dns_and_sysctls(pods: Pods) -> None:
    pod = pods.run(
        port_mappings=[cri.PortMapping(container_port=8080, host_port=18081)],
        dns_config=cri.DNSConfig(
            servers=["10.9.9.9"], searches=["pycri.example"], options=["ndots:3"]
        ),
    )
    server = pods.container(
        pod, ["sh", "-c", "while true; do echo via-host-port | nc -l -p 8080; done"]
    )
    resolv = pods.exec(server, "cat", "/etc/resolv.conf").stdout.decode()
    assert "nameserver 10.9.9.9" in resolv
    assert "search pycri.example" in resolv
    assert "ndots:3" in resolv
    host_ip = subprocess.run(
        ["hostname", "-I"], capture_output=True, text=True, check=True
    ).stdout.split()[0]

    def answered() -> bool:
        try:
            with socket.create_connection((host_ip, 18081), timeout=2) as conn:
                return conn.recv(64) == b"via-host-port\n"
        except OSError:
            return False

    wait_for(answered, 10, "the host port", interval=0.2)


def test_host_network_pod(pods: Pods, client: CRIClient) -> None:
    host_ns = cri.NamespaceOption(network=cri.NODE)
    pod = pods.run(
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(namespace_options=host_ns)
        )
    )
    status = client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod[0]))
    assert status.status.network.ip == ""
    assert status.status.linux.namespaces.options.network == cri.NODE
    container = pods.container(pod, ["sleep", "60"])
    # the host's nerdctl bridge is visible only from the host's network namespace
    assert b"nerdctl0" in pods.exec(container, "ip", "link").stdout


def test_pid_namespace_follows_the_cri(pods: Pods) -> None:
    pod = pods.run()
    shared = pods.container(pod, ["sleep", "60"], name="shared")
    assert b"/pause" in pods.exec(shared, "ps").stdout  # POD (CRI's zero value)
    own = cri.NamespaceOption(pid=cri.CONTAINER)
    private = pods.container(
        pod,
        ["sleep", "60"],
        name="private",
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(namespace_options=own)
        ),
    )
    processes = pods.exec(private, "ps").stdout
    assert b"/pause" not in processes
    assert b"sleep 60" in processes


# -- namespaces ------------------------------------------------------------------


def test_isolated_from_the_k8s_io_namespace(pods: Pods, client: CRIClient) -> None:
    pod_id, _ = pods.run()
    theirs = set(nerdctl("--namespace", "k8s.io", "ps", "-a", "-q", "--no-trunc").split())
    assert pod_id not in theirs
    ours = {p.id for p in client.list_pod_sandbox().items}
    ours |= {c.id for c in client.list_containers().containers}
    assert pod_id in ours
    assert not ours & theirs
    with pytest.raises(ValueError, match=r"k8s\.io"):
        NerdctlShim.from_options({"namespace": "k8s.io"})
    refused = subprocess.run(
        [sys.executable, "-m", "pycri.server.main", "--shim", "nerdctl", "-O", "namespace=k8s.io"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "k8s.io" in refused.stderr


# -- container settings and status ---------------------------------------------------


def test_complete_container_status(pods: Pods, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("from the host\n")
    pod = pods.run()
    container_id = pods.container(
        pod,
        ["sh", "-c", "cat /data/hello.txt; touch /data/x 2>/dev/null || echo read-only >&2"],
        mounts=[cri.Mount(container_path="/data", host_path=str(data), readonly=True)],
        labels={"tier": "db"},
        annotations={"note": "a" * 10_000},  # over containerd's 4096-byte label limit
    )
    status = pods.wait_exited(container_id)
    assert (status.exit_code, status.reason) == (0, "Completed")
    assert status.created_at <= status.started_at <= status.finished_at
    assert status.image.image == BUSYBOX
    assert status.image_ref.startswith("sha256:")
    assert status.labels == {"tier": "db"}
    assert status.annotations == {"note": "a" * 10_000}
    assert [(m.container_path, m.host_path, m.readonly) for m in status.mounts] == [
        ("/data", str(data), True)
    ]
    assert status.log_path == str(Path(pod[1].log_directory) / "app.log")
    wait_for(lambda: Path(status.log_path).exists(), 10, "the log")
    log = Path(status.log_path)
    wait_for(lambda: len(log.read_bytes().splitlines()) == 2, 10, "two log lines")
    lines = sorted(log.read_bytes().splitlines(), key=lambda line: line.split(b" ")[1])
    assert lines[0].endswith(b"stderr F read-only")
    assert lines[1].endswith(b"stdout F from the host")


def test_oom_killed_and_start_error(pods: Pods) -> None:
    pod = pods.run()
    hog = pods.container(
        pod,
        ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
        name="hog",
        linux=cri.LinuxContainerConfig(
            resources=cri.LinuxContainerResources(memory_limit_in_bytes=16 * 1024 * 1024)
        ),
    )
    status = pods.wait_exited(hog)
    assert (status.exit_code, status.reason) == (137, "OOMKilled")

    with pytest.raises(CRIError, match="executable file not found"):
        pods.container(pod, ["no-such-binary"], name="broken")
    broken = [c for c in pods.client.list_containers().containers if c.metadata.name == "broken"]
    assert [c.state for c in broken] == [cri.CONTAINER_EXITED]
    status = pods.status(broken[0].id)
    assert (status.reason, status.exit_code) == ("StartError", 128)
    assert "executable file not found" in status.message


def test_security_context_and_resources(pods: Pods) -> None:
    pod = pods.run()
    user = cri.LinuxContainerSecurityContext(
        run_as_user=cri.Int64Value(value=1000),
        run_as_group=cri.Int64Value(value=2000),
        supplemental_groups=[3000],
        readonly_rootfs=True,
        capabilities=cri.Capability(drop_capabilities=["NET_RAW"]),
    )
    limited = pods.container(
        pod,
        ["sleep", "60"],
        name="limited",
        working_dir="/tmp",
        envs=[cri.KeyValue(key="GREETING", value="hi, there")],
        linux=cri.LinuxContainerConfig(
            security_context=user,
            resources=cri.LinuxContainerResources(
                cpu_shares=512, cpu_quota=50_000, cpu_period=100_000, memory_limit_in_bytes=64 << 20
            ),
        ),
    )
    ids = pods.exec(limited, "id").stdout.decode()
    assert "uid=1000" in ids
    assert "gid=2000" in ids
    assert "3000" in ids
    assert pods.exec(limited, "touch", "/rootfs-is-readonly").exit_code != 0
    assert pods.exec(limited, "pwd").stdout == b"/tmp\n"
    assert pods.exec(limited, "sh", "-c", "echo $GREETING").stdout == b"hi, there\n"
    cgroup = Path("/sys/fs/cgroup")
    if not (cgroup / "cgroup.controllers").exists():  # cgroup v1, as on these machines
        assert (cgroup / "cpu/pycri" / limited / "cpu.shares").read_text().strip() == "512"
        assert (cgroup / "cpu/pycri" / limited / "cpu.cfs_quota_us").read_text().strip() == "50000"
        memory = cgroup / "memory/pycri" / limited / "memory.limit_in_bytes"
        assert memory.read_text().strip() == str(64 << 20)
    no_raw = pods.exec(limited, "grep", "CapBnd", "/proc/self/status").stdout.split()[1]
    assert not int(no_raw, 16) >> 13 & 1  # CAP_NET_RAW is bit 13

    privileged = pods.container(
        pod,
        ["sh", "-c", "tty; sleep 60"],
        name="privileged",
        tty=True,
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(privileged=True)
        ),
    )
    bounding = pods.exec(privileged, "grep", "CapBnd", "/proc/self/status").stdout.split()[1]
    mask = int(bounding, 16)
    granted = [name for bit, name in enumerate(CAPABILITY_NAMES) if mask >> bit & 1]
    assert granted == bounding_capabilities()
    log = Path(pod[1].log_directory) / "privileged.log"
    wait_for(lambda: log.exists() and b"/dev/pts/" in log.read_bytes(), 10, "a tty")


def test_masked_and_readonly_paths(pods: Pods) -> None:
    """nerdctl has no flags for them: specedit's runc wrapper writes them into the spec."""
    pod = pods.run()

    def container(name: str, **security: object) -> str:
        ctx = cri.LinuxContainerSecurityContext(**security)  # type: ignore[arg-type]
        linux = cri.LinuxContainerConfig(security_context=ctx)
        return pods.container(pod, ["sleep", "60"], name=name, linux=linux)

    plain = container("plain")
    assert pods.exec(plain, "cat", "/etc/passwd").stdout.startswith(b"root:")
    assert pods.exec(plain, "ls", "/usr/sbin").stdout != b""
    # a file becomes /dev/null, a directory an empty read-only tmpfs (runc's masking)
    masked = container("masked", masked_paths=["/etc/passwd", "/usr/sbin"])
    assert pods.exec(masked, "cat", "/etc/passwd").stdout == b""
    assert pods.exec(masked, "ls", "/usr/sbin").stdout == b""

    readonly = container("readonly", readonly_paths=["/tmp"])
    refused = pods.exec(readonly, "touch", "/tmp/x")
    assert refused.exit_code != 0
    assert b"Read-only file system" in refused.stderr

    # the kubelet's default lists are nerdctl's own: no wrapper, /proc/kcore stays masked
    defaults = container(
        "defaults",
        masked_paths=sorted(specedit.DEFAULT_MASKED),
        readonly_paths=sorted(specedit.DEFAULT_READONLY),
    )
    labels = json.dumps(engine_inspect(defaults)["Config"])
    assert "io.pycri.masked-paths" not in labels
    assert "io.pycri.masked-paths" in json.dumps(engine_inspect(masked)["Config"])
    assert pods.exec(defaults, "cat", "/proc/timer_list").stdout == b""
    # privileged: /proc unmasked, as containerd's CRI does it
    privileged = container("unmasked", privileged=True)
    assert pods.exec(privileged, "cat", "/proc/timer_list").stdout.startswith(b"Timer List")


@pytest.fixture(scope="module")
def group_image(client: CRIClient) -> Iterator[str]:
    """critest's image, whose /etc/group puts uid 1000 in group 50000; removed if pulled here."""
    spec = cri.ImageSpec(image=GROUP_IMAGE)
    pulled = not client.image_status(cri.ImageStatusRequest(image=spec)).HasField("image")
    if pulled:
        client.pull_image(cri.PullImageRequest(image=spec))
    yield GROUP_IMAGE
    if pulled:
        client.remove_image(cri.RemoveImageRequest(image=spec))


@pytest.mark.parametrize(
    ("policy", "groups"), [(cri.Merge, [1000, 1234, 50000]), (cri.Strict, [1000, 1234])]
)
def test_supplemental_groups_policy(
    pods: Pods,
    client: CRIClient,
    group_image: str,
    policy: cri.SupplementalGroupsPolicy,
    groups: list[int],
) -> None:
    """nerdctl adds the image's groups (50000); for Strict the runc wrapper takes them away
    again, from the first process and from every exec'd one."""
    assert client.status().features.supplemental_groups_policy
    pod = pods.run()
    context = cri.LinuxContainerSecurityContext(
        run_as_user=cri.Int64Value(value=1000),
        supplemental_groups=[1234],
        supplemental_groups_policy=policy,
    )
    container_id = pods.container(
        pod,
        ["sh", "-c", "id -G; sleep 300"],
        image=group_image,
        linux=cri.LinuxContainerConfig(security_context=context),
    )
    expected = " ".join(map(str, groups))  # busybox: the gid first, then the others
    log = Path(pod[1].log_directory) / "app.log"

    def first_process_said() -> list[str]:
        text = log.read_text() if log.exists() else ""
        return [line.split(" ", 3)[3] for line in text.splitlines()]

    wait_for(lambda: first_process_said() != [], 10, "the first process's id -G")
    assert first_process_said() == [expected]
    assert pods.exec(container_id, "id", "-G").stdout == f"{expected}\n".encode()
    user = pods.status(container_id).user.linux
    assert (user.uid, user.gid, sorted(user.supplemental_groups)) == (1000, 1000, groups)

    # stopped: the stored spec's user, with the groups the wrapper gave
    pods.client.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=0))
    stopped = pods.status(container_id)
    assert stopped.state == cri.CONTAINER_EXITED
    user = stopped.user.linux
    assert (user.uid, user.gid, sorted(user.supplemental_groups)) == (1000, 1000, groups)


# -- costs, logs, stats ---------------------------------------------------------------


def test_lists_cost_no_process_whatever_the_count(pods: Pods, shim: NerdctlShim) -> None:
    pod = pods.run()
    for index in range(4):
        pods.container(pod, ["sleep", "60"], name=f"c{index}", start=False)
    wait_for(lambda: shim.view.fresh, 60, "the container view")
    before = shim.runner.counter.snapshot()
    pods.client.list_containers()
    pods.client.list_pod_sandbox()
    after = shim.runner.counter.snapshot()
    for rpc in ("ListContainers", "ListPodSandbox"):
        spent = after[rpc]["processes"] - before.get(rpc, {}).get("processes", 0)
        assert spent == 0, rpc
    info = pods.client.status(cri.StatusRequest(verbose=True)).info
    assert json.loads(info["containerView"])["fresh"] is True
    # without the view (stream down, rebuilding): one ps, whatever the count
    shim.view.invalidate()
    fallback = shim.list_containers(None)
    assert {c.id for c in fallback} >= {c.id for c in pods.client.list_containers().containers}


def test_exec_timeout_kills_what_it_started(pods: Pods) -> None:
    pod = pods.run()
    container_id = pods.container(pod, ["sleep", "60"])
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        pods.client.exec_sync(
            cri.ExecSyncRequest(
                container_id=container_id,
                cmd=["sh", "-c", "trap '' TERM; sleep 30; echo never"],
                timeout=1,
            )
        )
    assert time.monotonic() - started < 10
    processes = pods.exec(container_id, "ps").stdout.decode()
    assert "sleep 30" not in processes
    # output is bytes, and the command's own exit code and stderr come back intact
    raw = pods.exec(container_id, "sh", "-c", "printf '\\377\\000'; printf half >&2; exit 7")
    assert (raw.stdout, raw.stderr, raw.exit_code) == (b"\xff\x00", b"half", 7)


def test_logs_stats_and_reopen(pods: Pods, client: CRIClient) -> None:
    pod = pods.run()
    talker = pods.container(
        pod, ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.1; done"]
    )
    log = Path(pod[1].log_directory) / "app.log"
    wait_for(lambda: log.exists() and b"line 3" in log.read_bytes(), 10, "three lines")
    log.rename(log.with_suffix(".log.1"))
    client.reopen_container_log(cri.ReopenContainerLogRequest(container_id=talker))
    wait_for(lambda: log.exists() and log.stat().st_size > 0, 10, "lines in the new file")
    old = log.with_suffix(".log.1").read_bytes().splitlines()
    new = log.read_bytes().splitlines()
    numbers = [int(line.rsplit(b" ", 1)[1]) for line in old + new]
    assert numbers == list(range(1, len(numbers) + 1))

    stats = client.container_stats(cri.ContainerStatsRequest(container_id=talker)).stats
    assert stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0
    pod_stats = client.pod_sandbox_stats(cri.PodSandboxStatsRequest(pod_sandbox_id=pod[0]))
    linux = pod_stats.stats.linux
    assert [c.attributes.id for c in linux.containers] == [talker]
    assert linux.network.default_interface.name == "eth0"
    assert linux.cpu.usage_core_nano_seconds.value >= stats.cpu.usage_core_nano_seconds.value


def test_update_container_resources(pods: Pods) -> None:
    pod = pods.run()
    container_id = pods.container(pod, ["sleep", "60"])
    pods.client.update_container_resources(
        cri.UpdateContainerResourcesRequest(
            container_id=container_id,
            linux=cri.LinuxContainerResources(cpu_shares=300, memory_limit_in_bytes=96 << 20),
        )
    )
    spec = json.loads(nerdctl("container", "inspect", "--mode", "native", container_id))[0]["Spec"][
        "linux"
    ]["resources"]
    assert spec["cpu"]["shares"] == 300
    assert spec["memory"]["limit"] == 96 << 20


# -- images ------------------------------------------------------------------------


def test_remove_image_removes_every_tag_and_nothing_else(client: CRIClient) -> None:
    pulled = "127.0.0.1:5000/pycri/busybox:latest"
    alias = "127.0.0.1:5000/pycri/busybox:second-tag"
    image_ref = client.pull_image(cri.PullImageRequest(image=cri.ImageSpec(image=pulled))).image_ref
    try:
        nerdctl("tag", pulled, alias)
        status = client.image_status(cri.ImageStatusRequest(image=cri.ImageSpec(image=alias)))
        assert status.image.id == image_ref
        by_id = client.image_status(cri.ImageStatusRequest(image=cri.ImageSpec(image=image_ref)))
        assert set(by_id.image.repo_tags) == {pulled, alias}
        listed = {i.id: i for i in client.list_images().images}
        assert set(listed[image_ref].repo_tags) == {pulled, alias}
        assert listed[image_ref].size > 0
        # the same content as busybox, pulled from elsewhere: a separate image
        assert BUSYBOX not in listed[image_ref].repo_tags

        client.remove_image(cri.RemoveImageRequest(image=cri.ImageSpec(image=alias)))
        names = {tag for image in client.list_images().images for tag in image.repo_tags}
        assert pulled not in names
        assert alias not in names
        assert BUSYBOX in names
    finally:
        options = NerdctlOptions()
        subprocess.run(
            [options.nerdctl, *options.global_args(), "rmi", "-f", pulled, alias],
            capture_output=True,
            check=False,
        )


# -- errors ------------------------------------------------------------------------


def test_missing_nerdctl_is_unavailable_with_an_install_hint(tmp_path: Path) -> None:
    shim = NerdctlShim(NerdctlOptions(nerdctl=str(tmp_path / "no-nerdctl")), recover_logs=False)
    server, client = serve(shim, tmp_path)
    try:
        with pytest.raises(UnavailableError, match=r"go install github\.com/containerd/nerdctl"):
            client.list_pod_sandbox()
        conditions = {c.type: c for c in client.status().status.conditions}
        assert conditions["RuntimeReady"].status is False
    finally:
        client.close()
        server.stop(grace=0.5)
        shim.close()


def test_wrong_containerd_socket_is_unavailable(tmp_path: Path) -> None:
    bogus = NerdctlOptions(address=str(tmp_path / "no-containerd.sock"))
    shim = NerdctlShim(bogus, recover_logs=False)
    server, client = serve(shim, tmp_path)
    try:
        with pytest.raises(UnavailableError, match="start containerd"):
            client.list_containers()
        with pytest.raises(UnavailableError):
            client.list_images()
        conditions = {c.type: c for c in client.status().status.conditions}
        assert conditions["RuntimeReady"].status is False
        assert "start containerd" in conditions["RuntimeReady"].message
    finally:
        client.close()
        server.stop(grace=0.5)
        shim.close()


def test_a_hung_nerdctl_is_killed_without_zombies(tmp_path: Path) -> None:
    # a stand-in nerdctl that hangs with a child of its own, recording both pids
    pids = tmp_path / "pids"
    fake = tmp_path / "nerdctl"
    fake.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    fake.chmod(0o755)
    # no event stream: its long-running process would run the stand-in too
    options = NerdctlOptions(nerdctl=str(fake), timeout=1.0)
    shim = NerdctlShim(options, recover_logs=False, watch_events=False)
    try:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="killed"):
            shim.list_containers(None)
        assert time.monotonic() - started < 5
        shell, child = pids.read_text().split()
        # our child is reaped by us at once: not even a zombie is left
        assert not Path(f"/proc/{shell}").exists(), "the timed-out process was not reaped"
        # its own child was killed with it; init reaps that orphan
        wait_for(lambda: not Path(f"/proc/{child}").exists(), 5, "the orphan to go")
    finally:
        shim.close()


def test_unknown_ids_are_not_found(shim: NerdctlShim) -> None:
    with pytest.raises(NotFoundError):
        shim.container_status("f" * 64, False)
    with pytest.raises(NotFoundError):
        shim.stop_pod_sandbox("f" * 64)
    with pytest.raises(NotFoundError):
        shim.remove_image("127.0.0.1:5000/pycri/never-pulled:1")
    assert os.path.exists(shim.options.nerdctl)
