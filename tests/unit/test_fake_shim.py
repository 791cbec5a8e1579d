"""The fake shim: CRI semantics in memory, driven directly and through CRIRuntime."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from pycri.api import api_pb2 as cri
from pycri.core import CRIRuntime
from pycri.core.logs import parse_log_line
from pycri.errors import (
    CRIError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from pycri.shim import PullProgress
from pycri_shims.fake import FakeShim

BUSYBOX = "docker.io/library/busybox:latest"
PAUSE = "registry.k8s.io/pause:3.9"


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def fake_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pycri-fake")]


def pod_config(
    tmp_path: Path, name: str = "web", *, host_network: bool = False
) -> cri.PodSandboxConfig:
    namespaces = cri.NamespaceOption(network=cri.NODE if host_network else cri.POD)
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name,
        log_directory=str(tmp_path / "logs" / name),
        labels={"app": name},
        annotations={"note": "pod"},
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(namespace_options=namespaces)
        ),
    )


def container_config(
    name: str, command: list[str] | None = None, image: str = BUSYBOX, **extra: str
) -> cri.ContainerConfig:
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name, attempt=1),
        image=cri.ImageSpec(image=image),
        command=command or [],
        log_path=f"{name}.log",
        labels={"role": name, **extra},
        annotations={"note": name},
        envs=[cri.KeyValue(key="GREETING", value="hello")],
        mounts=[cri.Mount(container_path="/data", host_path="/nonexistent/data")],
    )


class Pod:
    """A pod run through CRIRuntime, with helpers to run containers in it."""

    def __init__(self, runtime: CRIRuntime, config: cri.PodSandboxConfig) -> None:
        self.runtime = runtime
        self.config = config
        request = cri.RunPodSandboxRequest(config=config)
        self.id = runtime.run_pod_sandbox(request).pod_sandbox_id

    def create(self, config: cri.ContainerConfig) -> str:
        request = cri.CreateContainerRequest(
            pod_sandbox_id=self.id, config=config, sandbox_config=self.config
        )
        return self.runtime.create_container(request).container_id

    def run(self, name: str, command: list[str] | None = None, image: str = BUSYBOX) -> str:
        container_id = self.create(container_config(name, command, image))
        self.runtime.start_container(cri.StartContainerRequest(container_id=container_id))
        return container_id

    def status(self, container_id: str) -> cri.ContainerStatus:
        request = cri.ContainerStatusRequest(container_id=container_id)
        return self.runtime.container_status(request).status

    def wait_exited(self, container_id: str) -> cri.ContainerStatus:
        wait_for(
            lambda: self.status(container_id).state == cri.CONTAINER_EXITED, "the container to exit"
        )
        return self.status(container_id)

    def log(self, name: str) -> list[tuple[str, bool, bytes]]:
        path = Path(self.config.log_directory) / f"{name}.log"
        lines = [parse_log_line(raw) for raw in path.read_bytes().splitlines()]
        return [(line.stream, line.partial, line.message) for line in lines]


@pytest.fixture
def pod(runtime: CRIRuntime, tmp_path: Path) -> Pod:
    return Pod(runtime, pod_config(tmp_path))


# -- pod sandboxes --------------------------------------------------------------------------


def test_pod_sandbox_lifecycle_direct(fake: FakeShim, tmp_path: Path) -> None:
    config = pod_config(tmp_path)
    before = time.time_ns()
    pod_id = fake.run_pod_sandbox(config, "")
    assert len(pod_id) == 64
    assert all(c in "0123456789abcdef" for c in pod_id)

    status, info = fake.pod_sandbox_status(pod_id, verbose=False)
    assert (status.id, status.state, status.metadata) == (
        pod_id,
        cri.SANDBOX_READY,
        config.metadata,
    )
    assert before <= status.created_at <= time.time_ns()
    assert dict(status.labels) == {"app": "web"}
    assert dict(status.annotations) == {"note": "pod"}
    assert ipaddress.ip_address(status.network.ip) in ipaddress.ip_network("10.88.0.0/16")
    assert status.linux.namespaces.options.network == cri.POD
    assert info == {}
    listed = fake.list_pod_sandboxes(None)
    assert [(p.id, p.state, dict(p.labels)) for p in listed] == [
        (pod_id, cri.SANDBOX_READY, {"app": "web"})
    ]

    fake.stop_pod_sandbox(pod_id)
    assert fake.pod_sandbox_status(pod_id, False)[0].state == cri.SANDBOX_NOTREADY
    fake.remove_pod_sandbox(pod_id)
    with pytest.raises(NotFoundError):
        fake.pod_sandbox_status(pod_id, False)
    assert fake.list_pod_sandboxes(None) == []


def test_pods_get_distinct_ips_and_host_network_pods_none(fake: FakeShim, tmp_path: Path) -> None:
    first = fake.run_pod_sandbox(pod_config(tmp_path, "a"), "")
    second = fake.run_pod_sandbox(pod_config(tmp_path, "b"), "")
    host = fake.run_pod_sandbox(pod_config(tmp_path, "h", host_network=True), "")
    ips = [fake.pod_sandbox_status(p, False)[0].network.ip for p in (first, second, host)]
    assert ips[0] != ips[1]
    assert ips[2] == ""
    assert fake.pod_sandbox_status(host, False)[0].linux.namespaces.options.network == cri.NODE


def test_pod_cidr_from_the_kubelet(fake: FakeShim, tmp_path: Path) -> None:
    config = cri.RuntimeConfig(network_config=cri.NetworkConfig(pod_cidr="10.244.1.0/30"))
    fake.update_runtime_config(config)
    pod_id = fake.run_pod_sandbox(pod_config(tmp_path, "a"), "")
    assert fake.pod_sandbox_status(pod_id, False)[0].network.ip == "10.244.1.2"
    with pytest.raises(ResourceExhaustedError):
        fake.run_pod_sandbox(pod_config(tmp_path, "b"), "")  # a /30 has room for one pod


def test_verbose_pod_status_has_info_json(runtime: CRIRuntime, pod: Pod) -> None:
    request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod.id, verbose=True)
    info = json.loads(runtime.pod_sandbox_status(request).info["info"])
    assert info["image"] == PAUSE
    assert info["config"]["metadata"]["name"] == "web"


def test_runtime_handlers_option(tmp_path: Path) -> None:
    fake = FakeShim(runtime_handlers="runc,kata")
    runtime = CRIRuntime(fake)
    try:
        assert fake.runtime_handlers() == ["", "runc", "kata"]
        request = cri.RunPodSandboxRequest(config=pod_config(tmp_path), runtime_handler="kata")
        pod_id = runtime.run_pod_sandbox(request).pod_sandbox_id
        assert fake.pod_sandbox_status(pod_id, False)[0].runtime_handler == "kata"
        with pytest.raises(InvalidArgumentError):
            fake.run_pod_sandbox(pod_config(tmp_path, "other"), "gvisor")
    finally:
        fake.close()


# -- containers ------------------------------------------------------------------------------


def test_container_lifecycle_times_and_metadata(runtime: CRIRuntime, pod: Pod) -> None:
    container_id = pod.create(container_config("app", ["sleep", "60"]))
    created = pod.status(container_id)
    assert created.state == cri.CONTAINER_CREATED
    assert (created.started_at, created.finished_at) == (0, 0)
    assert created.metadata == cri.ContainerMetadata(name="app", attempt=1)
    assert dict(created.labels) == {"role": "app"}
    assert dict(created.annotations) == {"note": "app"}
    assert created.image.image == BUSYBOX
    assert created.image_ref == created.image_id
    assert created.image_ref.startswith("sha256:")
    assert [m.container_path for m in created.mounts] == ["/data"]
    assert created.log_path == str(Path(pod.config.log_directory) / "app.log")

    runtime.start_container(cri.StartContainerRequest(container_id=container_id))
    running = pod.status(container_id)
    assert running.state == cri.CONTAINER_RUNNING
    assert running.started_at >= running.created_at > 0

    listed = runtime.list_containers(cri.ListContainersRequest()).containers
    assert [(c.id, c.pod_sandbox_id, c.state, dict(c.labels)) for c in listed] == [
        (container_id, pod.id, cri.CONTAINER_RUNNING, {"role": "app"})
    ]

    begin = time.monotonic()
    runtime.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=30))
    assert time.monotonic() - begin < 2  # SIGTERM ends it at once; no waiting for the timeout
    stopped = pod.status(container_id)
    assert (stopped.state, stopped.exit_code, stopped.reason) == (
        cri.CONTAINER_EXITED,
        143,
        "Error",
    )
    assert stopped.finished_at >= stopped.started_at

    runtime.remove_container(cri.RemoveContainerRequest(container_id=container_id))
    with pytest.raises(NotFoundError):
        pod.status(container_id)


def test_exit_codes_reasons_and_logs(pod: Pod) -> None:
    ok = pod.run("ok", ["echo", "hi"])
    bad = pod.run("bad", ["sh", "-c", "echo to-out; echo oops >&2; exit 3"])
    partial = pod.run("partial", ["printf", "no newline"])

    ok_status = pod.wait_exited(ok)
    assert (ok_status.exit_code, ok_status.reason) == (0, "Completed")
    bad_status = pod.wait_exited(bad)
    assert (bad_status.exit_code, bad_status.reason) == (3, "Error")
    pod.wait_exited(partial)

    assert pod.log("ok") == [("stdout", False, b"hi")]
    assert pod.log("bad") == [("stdout", False, b"to-out"), ("stderr", False, b"oops")]
    assert pod.log("partial") == [("stdout", True, b"no newline")]


def test_sleep_runs_for_its_time(pod: Pod) -> None:
    container_id = pod.run("nap", ["sleep", "0.3"])
    assert pod.status(container_id).state == cri.CONTAINER_RUNNING
    status = pod.wait_exited(container_id)
    assert status.exit_code == 0
    assert 0.3e9 <= status.finished_at - status.started_at < 3e9


def test_log_lines_are_timestamped_as_emitted(pod: Pod) -> None:
    container_id = pod.run("ticker", ["sh", "-c", "echo a; sleep 0.2; echo b"])
    pod.wait_exited(container_id)
    path = Path(pod.config.log_directory) / "ticker.log"
    first, second = (parse_log_line(raw) for raw in path.read_bytes().splitlines())
    assert (first.message, second.message) == (b"a", b"b")
    assert second.timestamp_ns - first.timestamp_ns >= 150_000_000


def test_no_log_path_without_log_directory(runtime: CRIRuntime, tmp_path: Path) -> None:
    config = pod_config(tmp_path)
    config.log_directory = ""
    pod = Pod(runtime, config)
    container_id = pod.run("quiet", ["echo", "hi"])
    assert pod.wait_exited(container_id).log_path == ""


def test_image_defaults_decide_what_runs(pod: Pod) -> None:
    shell = pod.run("shell", image=BUSYBOX)  # busybox runs sh, which exits with no stdin
    assert (pod.wait_exited(shell).exit_code, pod.status(shell).reason) == (0, "Completed")

    pause = pod.run("pause", image=PAUSE)
    time.sleep(0.1)
    assert pod.status(pause).state == cri.CONTAINER_RUNNING
    pod.runtime.stop_container(cri.StopContainerRequest(container_id=pause, timeout=10))
    assert (pod.status(pause).exit_code, pod.status(pause).reason) == (0, "Completed")

    killed = pod.run("killed", image=PAUSE)
    pod.runtime.stop_container(cri.StopContainerRequest(container_id=killed, timeout=0))
    assert pod.status(killed).exit_code == 137  # timeout 0 is SIGKILL


def test_args_replace_the_image_cmd(pod: Pod) -> None:
    config = container_config("args")  # busybox: no entrypoint, cmd ["sh"]
    config.args.extend(["echo", "from-args"])
    container_id = pod.create(config)
    pod.runtime.start_container(cri.StartContainerRequest(container_id=container_id))
    pod.wait_exited(container_id)
    assert pod.log("args") == [("stdout", False, b"from-args")]


def test_args_go_to_the_image_entrypoint(fake: FakeShim, pod: Pod) -> None:
    fake.pull_image("docker.io/library/nginx:latest", None)
    config = container_config("web", image="nginx")  # entrypoint docker-entrypoint.sh
    config.args.extend(["echo", "configured"])
    container_id = pod.create(config)
    pod.runtime.start_container(cri.StartContainerRequest(container_id=container_id))
    assert pod.wait_exited(container_id).exit_code == 0
    assert pod.log("web") == [("stdout", False, b"configured")]
    server = pod.run("server", image="nginx")  # the image's own cmd serves until stopped
    time.sleep(0.05)
    assert pod.status(server).state == cri.CONTAINER_RUNNING


def test_missing_image_is_not_found(pod: Pod) -> None:
    with pytest.raises(NotFoundError, match=r"docker\.io/library/nginx:1\.27"):
        pod.create(container_config("web", image="nginx:1.27"))


def test_image_can_be_named_by_id(fake: FakeShim, pod: Pod) -> None:
    image = fake.image_status(BUSYBOX)
    assert image is not None
    container_id = pod.create(container_config("by-id", ["true"], image=image.id))
    status = pod.status(container_id)
    assert (status.image.image, status.image_ref) == (BUSYBOX, image.id)


def test_unknown_program_fails_to_start(pod: Pod) -> None:
    container_id = pod.create(container_config("typo", ["ngnix"]))
    with pytest.raises(InternalError, match='exec: "ngnix": executable file not found'):
        pod.runtime.start_container(cri.StartContainerRequest(container_id=container_id))
    status = pod.status(container_id)
    assert (status.state, status.exit_code, status.reason) == (
        cri.CONTAINER_EXITED,
        128,
        "StartError",
    )


def test_direct_calls_check_state(fake: FakeShim, tmp_path: Path) -> None:
    pod_id = fake.run_pod_sandbox(pod_config(tmp_path), "")
    container_id = fake.create_container(
        pod_id, container_config("app", ["sleep", "60"]), cri.PodSandboxConfig()
    )
    fake.start_container(container_id)
    with pytest.raises(FailedPreconditionError):
        fake.start_container(container_id)
    with pytest.raises(FailedPreconditionError):
        fake.remove_container(container_id)
    with pytest.raises(NotFoundError):
        fake.container_status("f" * 64, False)
    # used directly, stopping the pod stops its containers
    fake.stop_pod_sandbox(pod_id)
    assert fake.container_status(container_id, False)[0].exit_code == 137
    with pytest.raises(FailedPreconditionError):
        fake.create_container(pod_id, container_config("late"), cri.PodSandboxConfig())
    fake.remove_pod_sandbox(pod_id)
    assert fake.list_containers(None) == []


def test_pod_stop_through_core_stops_containers(runtime: CRIRuntime, pod: Pod) -> None:
    container_id = pod.run("app", ["sleep", "60"])
    runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
    assert pod.status(container_id).state == cri.CONTAINER_EXITED
    runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    assert runtime.list_containers(cri.ListContainersRequest()).containers == []


def test_update_resources_and_verbose_status(runtime: CRIRuntime, pod: Pod) -> None:
    container_id = pod.run("app", ["sleep", "60"])
    resources = cri.LinuxContainerResources(cpu_quota=50_000, memory_limit_in_bytes=64 << 20)
    runtime.update_container_resources(
        cri.UpdateContainerResourcesRequest(container_id=container_id, linux=resources)
    )
    assert pod.status(container_id).resources.linux == resources

    request = cri.ContainerStatusRequest(container_id=container_id, verbose=True)
    info = json.loads(runtime.container_status(request).info["info"])
    assert info["sandboxID"] == pod.id
    assert info["runtimeSpec"]["process"]["args"] == ["sleep", "60"]
    assert "GREETING=hello" in info["runtimeSpec"]["process"]["env"]


def test_reopen_container_log(runtime: CRIRuntime, pod: Pod) -> None:
    script = "echo one; until [ -f /tmp/go ]; do sleep 0.01; done; echo two; sleep 60"
    container_id = pod.run("app", ["sh", "-c", script])
    path = Path(pod.config.log_directory) / "app.log"
    wait_for(lambda: path.exists() and path.read_bytes() != b"", "the first line")
    path.rename(path.with_suffix(".log.1"))
    runtime.reopen_container_log(cri.ReopenContainerLogRequest(container_id=container_id))
    runtime.exec_sync(cri.ExecSyncRequest(container_id=container_id, cmd=["touch", "/tmp/go"]))
    wait_for(lambda: path.exists() and path.read_bytes() != b"", "the second line")
    assert pod.log("app") == [("stdout", False, b"two")]


def test_container_exit_is_published_as_an_event(runtime: CRIRuntime, pod: Pod) -> None:
    subscription = runtime.events.subscribe()
    container_id = pod.run("quick", ["true"])
    pod.wait_exited(container_id)
    seen: list[cri.ContainerEventResponse] = []
    for event in subscription.events(poll=0.05):
        if event is None:
            break
        seen.append(event)
    subscription.close()
    kinds = [e.container_event_type for e in seen if e.container_id == container_id]
    assert kinds == [
        cri.CONTAINER_CREATED_EVENT,
        cri.CONTAINER_STARTED_EVENT,
        cri.CONTAINER_STOPPED_EVENT,
    ]
    assert seen[-1].containers_statuses[0].reason == "Completed"


# -- exec --------------------------------------------------------------------------------------


def test_exec_sync_runs_in_the_container_context(runtime: CRIRuntime, pod: Pod) -> None:
    container_id = pod.run("app", ["sh", "-c", "echo state > /tmp/state; sleep 60"])
    request = cri.ExecSyncRequest(
        container_id=container_id,
        cmd=["sh", "-c", "echo $GREETING $(hostname); cat /tmp/state; echo err >&2; exit 4"],
        timeout=5,
    )
    wait_for(lambda: runtime.exec_sync(request).stdout.endswith(b"state\n"), "the state file")
    result = runtime.exec_sync(request)
    assert (result.stdout, result.stderr, result.exit_code) == (b"hello web\nstate\n", b"err\n", 4)


def test_exec_sync_timeout(runtime: CRIRuntime, pod: Pod) -> None:
    container_id = pod.run("app", ["sleep", "60"])
    begin = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="timed out after 1s"):
        runtime.exec_sync(
            cri.ExecSyncRequest(container_id=container_id, cmd=["sleep", "30"], timeout=1)
        )
    assert time.monotonic() - begin < 3
    assert not [n for n in fake_threads() if n.startswith("pycri-fake-exec")]


def test_exec_sync_needs_a_running_container(runtime: CRIRuntime, pod: Pod) -> None:
    container_id = pod.run("app", ["true"])
    pod.wait_exited(container_id)
    with pytest.raises(FailedPreconditionError):
        runtime.exec_sync(cri.ExecSyncRequest(container_id=container_id, cmd=["true"]))
    with pytest.raises(FailedPreconditionError):
        runtime.shim.exec_sync(container_id, ["true"], 0)


# -- crash and faults -------------------------------------------------------------------------


def test_crash_is_oomkilled_by_default(fake: FakeShim, pod: Pod) -> None:
    container_id = pod.run("app", ["sleep", "60"])
    fake.crash(container_id)
    status = pod.status(container_id)
    assert (status.state, status.exit_code, status.reason) == (
        cri.CONTAINER_EXITED,
        137,
        "OOMKilled",
    )
    other = pod.run("other", ["sleep", "60"])
    fake.crash(other, exit_code=139, reason="Error", message="segfault")
    status = pod.status(other)
    assert (status.exit_code, status.reason, status.message) == (139, "Error", "segfault")
    with pytest.raises(FailedPreconditionError):
        fake.crash(other)


def test_fail_next_with_a_status_code(fake: FakeShim, runtime: CRIRuntime) -> None:
    fake.faults.fail_next("Version", grpc.StatusCode.UNAVAILABLE, "engine down", times=2)
    for _ in range(2):
        with pytest.raises(UnavailableError, match="engine down") as raised:
            runtime.version(cri.VersionRequest())
        assert raised.value.rpc == "Version"
    assert runtime.version(cri.VersionRequest()).runtime_name == "pycri"
    assert fake.faults.calls["Version"] == 3

    fake.faults.fail_next("Status", grpc.StatusCode.ABORTED)
    with pytest.raises(CRIError) as aborted:
        runtime.status(cri.StatusRequest())
    assert aborted.value.code == grpc.StatusCode.ABORTED


def test_fail_next_with_an_error_class_and_wildcard(fake: FakeShim, runtime: CRIRuntime) -> None:
    fake.faults.fail_next("PullImage", NotFoundError, "no such image upstream")
    with pytest.raises(NotFoundError, match="no such image upstream"):
        runtime.pull_image(cri.PullImageRequest(image=cri.ImageSpec(image="alpine")))
    fake.faults.fail_next("*", InternalError)
    with pytest.raises(InternalError, match="injected fault: ListImages"):
        runtime.list_images(cri.ListImagesRequest())
    assert not fake.faults.pending
    runtime.list_images(cri.ListImagesRequest())


def test_latency(fake: FakeShim, runtime: CRIRuntime) -> None:
    fake.faults.add_latency("Version", 0.2, times=1)
    begin = time.monotonic()
    runtime.version(cri.VersionRequest())
    assert time.monotonic() - begin >= 0.2
    assert not fake.faults.pending  # used up: the next call is not delayed

    fake.faults.add_latency("Status", 0.1)  # every call, until cleared
    for _ in range(2):
        begin = time.monotonic()
        runtime.status(cri.StatusRequest())
        assert time.monotonic() - begin >= 0.1
    fake.faults.clear()
    assert not fake.faults.pending


def test_fault_rpc_names_are_checked(fake: FakeShim) -> None:
    with pytest.raises(ValueError, match="did you mean 'RunPodSandbox'"):
        fake.faults.fail_next("RunPodSandBox", grpc.StatusCode.INTERNAL)
    with pytest.raises(ValueError, match="not a CRI RPC"):
        fake.faults.add_latency("Frobnicate", 1.0)
    with pytest.raises(ValueError, match="OK"):
        fake.faults.fail_next("Version", grpc.StatusCode.OK)


# -- images ----------------------------------------------------------------------------------------


def test_preloaded_images(fake: FakeShim) -> None:
    tags = sorted(tag for image in fake.list_images() for tag in image.repo_tags)
    assert tags == [BUSYBOX, PAUSE]
    pause = fake.image_status(PAUSE)
    assert pause is not None
    assert pause.pinned


def test_pull_status_list_and_remove(fake: FakeShim, runtime: CRIRuntime) -> None:
    spec = cri.ImageSpec(image="nginx:1.27")
    image_ref = runtime.pull_image(cri.PullImageRequest(image=spec)).image_ref
    assert image_ref.startswith("sha256:")
    assert len(image_ref) == len("sha256:") + 64
    assert runtime.pull_image(cri.PullImageRequest(image=spec)).image_ref == image_ref

    image = runtime.image_status(cri.ImageStatusRequest(image=spec)).image
    assert image.id == image_ref
    assert list(image.repo_tags) == ["docker.io/library/nginx:1.27"]
    [digest] = image.repo_digests
    assert digest.startswith("docker.io/library/nginx@sha256:")
    assert image.size > 100 << 20
    assert image.username == ""
    assert fake.image_status(image_ref[7:19]) == image  # an id prefix names it too
    # the same manifest pulled by digest is the same image
    assert fake.pull_image(digest, None) == image_ref

    other = fake.pull_image("docker.io/library/nginx:1.26", None)
    assert other != image_ref

    listed = runtime.list_images(cri.ListImagesRequest(filter=cri.ImageFilter(image=spec)))
    assert [i.id for i in listed.images] == [image_ref]

    runtime.remove_image(cri.RemoveImageRequest(image=spec))
    assert not runtime.image_status(cri.ImageStatusRequest(image=spec)).HasField("image")
    runtime.remove_image(cri.RemoveImageRequest(image=spec))  # idempotent through core
    with pytest.raises(NotFoundError):
        fake.remove_image("docker.io/library/nginx:1.27")


def test_image_ids_are_deterministic() -> None:
    first, second = FakeShim(preload=()), FakeShim(preload=())
    try:
        ref = "quay.io/org/tool:2"
        assert first.pull_image(ref, None) == second.pull_image(ref, None)
    finally:
        first.close()
        second.close()


def test_images_in_use_go_and_their_containers_keep_running(fake: FakeShim, pod: Pod) -> None:
    """containerd's CRI removes an image whatever uses it; Docker's rmi would refuse."""
    container_id = pod.run("app", ["sleep", "60"])
    fake.remove_image(BUSYBOX)
    assert fake.image_status(BUSYBOX) is None
    status = pod.runtime.container_status(cri.ContainerStatusRequest(container_id=container_id))
    assert status.status.state == cri.CONTAINER_RUNNING


def test_run_pod_sandbox_pulls_a_missing_pause_image_and_pins_it() -> None:
    fake = FakeShim(preload=(), pause_image="registry.example/pause:1")
    try:
        config = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name="p", namespace="ns", uid="u")
        )
        fake.run_pod_sandbox(config, "")
        [pause] = fake.list_images()
        assert pause.repo_tags == ["registry.example/pause:1"]
        assert pause.pinned
    finally:
        fake.close()
    strict = FakeShim(preload=(), registry=["busybox:1.36"])
    try:
        with pytest.raises(
            FailedPreconditionError, match=r"registry.k8s.io/pause:3.9.*pause_image"
        ):
            strict.run_pod_sandbox(config, "")
    finally:
        strict.close()


def test_registry_restricts_pulls() -> None:
    fake = FakeShim(preload=(), registry=["busybox:1.36"])
    try:
        assert fake.pull_image("docker.io/library/busybox:1.36", None).startswith("sha256:")
        with pytest.raises(NotFoundError, match="not found in the fake registry"):
            fake.pull_image("docker.io/library/alpine:latest", None)
    finally:
        fake.close()


def test_pull_delay_and_progress() -> None:
    fake = FakeShim(preload=(), pull_delay=0.2)
    steps: list[PullProgress] = []
    try:
        begin = time.monotonic()
        fake.pull_image("docker.io/library/alpine:3.20", None, steps.append)
        assert time.monotonic() - begin >= 0.2
    finally:
        fake.close()
    assert steps[0].status == "Resolving"
    assert steps[-1].status == "Pull complete"
    assert steps[-1].current_bytes == steps[-1].total_bytes > 0


def test_image_fs_info(fake: FakeShim, pod: Pod) -> None:
    container_id = pod.run("writer", ["sh", "-c", "echo 12345 > /tmp/out; sleep 60"])
    wait_for(
        lambda: fake.image_fs_info().container_filesystems[0].used_bytes.value > 4096 * 1,
        "the written file",
    )
    info = fake.image_fs_info()
    [images] = info.image_filesystems
    assert images.fs_id.mountpoint == "/var/lib/pycri-fake/images"
    assert images.used_bytes.value == sum(i.size for i in fake.list_images())
    assert images.inodes_used.value > 0
    [containers] = info.container_filesystems
    assert containers.used_bytes.value == 4096 + len("12345\n")
    stats = fake.container_stats([container_id])[0]
    assert stats.writable_layer.used_bytes.value == containers.used_bytes.value


# -- stats, health, options, close -------------------------------------------------------------


def test_container_and_pod_stats(runtime: CRIRuntime, pod: Pod) -> None:
    container_id = pod.run("app", ["sleep", "60"])
    request = cri.ContainerStatsRequest(container_id=container_id)
    first = runtime.container_stats(request).stats
    time.sleep(0.2)
    second = runtime.container_stats(request).stats
    assert second.attributes.id == container_id
    assert second.attributes.metadata.name == "app"
    assert dict(second.attributes.labels) == {"role": "app"}
    assert second.cpu.timestamp > first.cpu.timestamp
    assert second.cpu.usage_core_nano_seconds.value > first.cpu.usage_core_nano_seconds.value
    assert 1 << 20 < second.memory.working_set_bytes.value < 16 << 20

    stats = runtime.pod_sandbox_stats(cri.PodSandboxStatsRequest(pod_sandbox_id=pod.id)).stats
    assert stats.attributes.id == pod.id
    assert stats.linux.process.process_count.value == 2  # pause and the app
    assert [c.attributes.id for c in stats.linux.containers] == [container_id]
    assert stats.linux.network.default_interface.name == "eth0"
    listed = runtime.list_pod_sandbox_stats(cri.ListPodSandboxStatsRequest()).stats
    assert [s.attributes.id for s in listed] == [pod.id]


def test_conditions_and_version(fake: FakeShim, runtime: CRIRuntime) -> None:
    assert fake.runtime_version() == "fake 0.1.0"
    conditions = {c.type: c for c in runtime.status(cri.StatusRequest()).status.conditions}
    assert conditions["RuntimeReady"].status
    assert conditions["NetworkReady"].status
    fake.network_ready = False
    conditions = {c.type: c for c in runtime.status(cri.StatusRequest()).status.conditions}
    assert not conditions["NetworkReady"].status
    assert conditions["NetworkReady"].reason == "NetworkPluginNotReady"
    assert conditions["NetworkReady"].message


def test_from_options_parses_cli_strings() -> None:
    fake = FakeShim.from_options(
        {
            "preload": "busybox, alpine:3.20",
            "registry": "nginx,redis",
            "pull_delay": "0.01",
            "runtime_handlers": "runc",
            "network_ready": "false",
        }
    )
    try:
        tags = sorted(tag for image in fake.list_images() for tag in image.repo_tags)
        assert tags == ["docker.io/library/alpine:3.20", BUSYBOX]
        assert fake.pull_delay == 0.01
        assert fake.runtime_handlers() == ["", "runc"]
        assert not fake.network_ready
        fake.pull_image("docker.io/library/redis:latest", None)
        with pytest.raises(NotFoundError):
            fake.pull_image("docker.io/library/mysql:latest", None)
    finally:
        fake.close()
    with pytest.raises(ValueError, match="unknown fake shim option 'colour'"):
        FakeShim.from_options({"colour": "blue"})
    with pytest.raises(ValueError, match="pull_delay"):
        FakeShim.from_options({"pull_delay": "soon"})


def test_close_ends_every_process_and_thread(tmp_path: Path) -> None:
    fake = FakeShim()
    runtime = CRIRuntime(fake)
    pod = Pod(runtime, pod_config(tmp_path))
    container_id = pod.run("loop", ["sh", "-c", "while true; do echo tick; sleep 0.05; done"])
    pod.run("pause", image=PAUSE)
    exec_result: list[BaseException] = []

    def long_exec() -> None:
        try:
            fake.exec_sync(container_id, ["sleep", "60"], 0)
        except BaseException as err:  # pragma: no cover - reported below
            exec_result.append(err)

    caller = threading.Thread(target=long_exec)
    caller.start()
    wait_for(lambda: any(n.startswith("pycri-fake-exec") for n in fake_threads()), "the exec")
    assert len([n for n in fake_threads() if n.endswith(container_id[:12])]) == 2

    runtime.close()
    caller.join(5)
    assert not caller.is_alive()
    assert exec_result == []
    assert fake_threads() == []
    assert pod.log("loop")[0] == ("stdout", False, b"tick")
    with pytest.raises(UnavailableError):
        runtime.version(cri.VersionRequest())
    with pytest.raises(UnavailableError):
        fake.run_pod_sandbox(pod_config(tmp_path, "late"), "")
    fake.close()  # twice is fine


def test_removing_things_leaves_no_threads(runtime: CRIRuntime, pod: Pod) -> None:
    for index in range(3):
        pod.run(f"app{index}", ["sleep", "60"])
    runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
    runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    assert fake_threads() == []
