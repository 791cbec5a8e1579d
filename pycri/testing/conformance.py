"""The shim conformance suite: CRI behaviour every pycri shim must show.

A shim's tests reuse it by subclassing and providing a ``shim`` fixture::

    from pycri.testing.conformance import ConformanceConfig, ShimConformance

    class TestMyShim(ShimConformance):
        @pytest.fixture
        def shim(self):
            shim = MyShim()
            yield shim
            shim.close()

Override ``conformance`` to name the images your runtime has. Every test
runs end to end through a real ``CRIServer`` on a unix socket and the
typed ``CRIClient``, and removes every pod it created.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.logs import parse_log_line
from pycri.core.rpcs import base as rpc_base
from pycri.core.rro_staging import RROStaging
from pycri.core.runtime import CRIRuntime
from pycri.core.sandbox_resources import PodResources, SandboxResources
from pycri.errors import (
    AlreadyExistsError,
    CRIError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnimplementedError,
)
from pycri.server.server import CRIServer
from pycri.shim import Shim
from pycri.testing import require_real
from pycri.testing.submounts import tree_with_submount

__all__ = [
    "REQUIRED_METRICS",
    "ConformanceConfig",
    "PodFactory",
    "ShimConformance",
    "wait_for",
]


@dataclass(frozen=True)
class ConformanceConfig:
    #: an image present in the runtime, with busybox's sh, echo, sleep
    image: str = "docker.io/library/busybox:latest"
    #: an image the runtime can pull and the suite removes afterwards; it must not be
    #: ``image`` itself under another name (RemoveImage drops every tag of an image id)
    pull_image: str = "docker.io/library/busybox:1.36"
    #: the shim's sandbox (pause) image, which RunPodSandbox pulls when missing
    sandbox_image: str = "registry.k8s.io/pause:3.9"
    #: whether the suite may remove ``sandbox_image`` (it must be pullable again and
    #: used by nothing else: other runs sharing the engine need theirs)
    sandbox_image_removable: bool = False
    #: seconds to wait for a container to reach a state
    state_timeout: float = 30.0
    #: containers that print a line and exit, each log read the moment it says EXITED
    exit_log_rounds: int = 100
    #: whether containers see the host's real mounts (the fake's see copies of files)
    real_mounts: bool = True
    #: an image whose /etc/group makes uid 1000 a member of group 50000 (critest's);
    #: pulled when missing (and then removed again); "" leaves that check out
    group_image: str = "gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest"


#: what a pod with one running container reports on every shim: critest's expected
#: cAdvisor names, less those that depend on the host (block I/O accounting, pressure
#: stall information) or on the container's configuration (a CPU quota)
REQUIRED_METRICS = frozenset(
    {
        "container_cpu_cfs_periods_total",
        "container_cpu_cfs_throttled_periods_total",
        "container_cpu_cfs_throttled_seconds_total",
        "container_cpu_system_seconds_total",
        "container_cpu_usage_seconds_total",
        "container_cpu_user_seconds_total",
        "container_file_descriptors",
        "container_fs_inodes_free",
        "container_fs_inodes_total",
        "container_fs_limit_bytes",
        "container_fs_usage_bytes",
        "container_last_seen",
        "container_memory_cache",
        "container_memory_failcnt",
        "container_memory_failures_total",
        "container_memory_kernel_usage",
        "container_memory_mapped_file",
        "container_memory_max_usage_bytes",
        "container_memory_rss",
        "container_memory_swap",
        "container_memory_usage_bytes",
        "container_memory_working_set_bytes",
        "container_network_receive_bytes_total",
        "container_network_receive_errors_total",
        "container_network_receive_packets_dropped_total",
        "container_network_receive_packets_total",
        "container_network_transmit_bytes_total",
        "container_network_transmit_errors_total",
        "container_network_transmit_packets_dropped_total",
        "container_network_transmit_packets_total",
        "container_oom_events_total",
        "container_processes",
        "container_sockets",
        "container_spec_cpu_period",
        "container_spec_cpu_shares",
        "container_spec_memory_limit_bytes",
        "container_spec_memory_swap_limit_bytes",
        "container_start_time_seconds",
        "container_threads",
        "container_threads_max",
    }
)


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class PodFactory:
    """Creates pods with unique names and removes every one of them at teardown."""

    def __init__(self, client: CRIClient, log_root: Path, image: str) -> None:
        self.client = client
        self.log_root = log_root
        self.image = image
        self.created: list[str] = []

    def config(self, name: str = "", **labels: str) -> cri.PodSandboxConfig:
        uid = uuid.uuid4().hex
        name = name or f"conf-{uid[:8]}"
        log_dir = self.log_root / uid
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, namespace="conformance", uid=uid),
            hostname=name,
            log_directory=str(log_dir),
            labels={"pycri.test": "conformance", **labels},
            annotations={"pycri.test/annotation": "yes"},
            linux=cri.LinuxPodSandboxConfig(),
        )

    def run(self, config: cri.PodSandboxConfig | None = None) -> tuple[str, cri.PodSandboxConfig]:
        config = config or self.config()
        pod_id = self.client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        self.created.append(pod_id)
        return pod_id, config

    def container(
        self,
        pod_id: str,
        pod_config: cri.PodSandboxConfig,
        name: str,
        command: list[str],
        *,
        start: bool = True,
        image: str = "",
        linux: cri.LinuxContainerConfig | None = None,
        **labels: str,
    ) -> str:
        config = cri.ContainerConfig(
            linux=linux,
            metadata=cri.ContainerMetadata(name=name),
            image=cri.ImageSpec(image=image or self.image),
            command=command,
            log_path=f"{name}.log",
            labels={"pycri.test": "conformance", **labels},
            annotations={"pycri.test/annotation": name},
            envs=[cri.KeyValue(key="GREETING", value="hello")],
        )
        container_id = self.client.create_container(
            cri.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config
            )
        ).container_id
        if start:
            self.client.start_container(cri.StartContainerRequest(container_id=container_id))
        return container_id

    def cleanup(self) -> None:
        for pod_id in self.created:
            self.client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            self.client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


class ShimConformance:
    """Subclass with a ``shim`` fixture yielding the shim under test."""

    @pytest.fixture
    def conformance(self) -> ConformanceConfig:
        return ConformanceConfig()

    @pytest.fixture
    def shim(self) -> Iterator[Shim]:
        raise NotImplementedError("subclasses provide the shim fixture")

    @pytest.fixture
    def client(self, shim: Shim, tmp_path: Path) -> Iterator[CRIClient]:
        runtime = CRIRuntime(shim)
        server = CRIServer(runtime, f"unix://{tmp_path / 'cri.sock'}").start()
        client = CRIClient(server.address, timeout=60)
        try:
            yield client
        finally:
            client.close()
            server.stop(grace=1.0)

    @pytest.fixture
    def pods(
        self, client: CRIClient, tmp_path: Path, conformance: ConformanceConfig
    ) -> Iterator[PodFactory]:
        factory = PodFactory(client, tmp_path / "logs", conformance.image)
        try:
            yield factory
        finally:
            factory.cleanup()

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def status(client: CRIClient, container_id: str) -> cri.ContainerStatus:
        return client.container_status(cri.ContainerStatusRequest(container_id=container_id)).status

    def wait_exited(
        self, client: CRIClient, container_id: str, conformance: ConformanceConfig
    ) -> cri.ContainerStatus:
        wait_for(
            lambda: self.status(client, container_id).state == cri.CONTAINER_EXITED,
            conformance.state_timeout,
            f"container {container_id[:13]} to exit",
        )
        return self.status(client, container_id)

    # -- identity ----------------------------------------------------------------

    def test_version(self, client: CRIClient) -> None:
        version = client.version()
        assert version.runtime_name == "pycri"
        assert version.runtime_api_version == "v1"
        assert version.runtime_version

    def test_status_reports_runtime_ready(self, client: CRIClient) -> None:
        conditions = {c.type: c for c in client.status().status.conditions}
        assert conditions["RuntimeReady"].status is True
        assert "NetworkReady" in conditions

    # -- pod sandboxes -----------------------------------------------------------

    def test_pod_lifecycle(self, client: CRIClient, pods: PodFactory) -> None:
        config = pods.config(app="web")
        pod_id, _ = pods.run(config)

        status = client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
        assert status.status.id == pod_id
        assert status.status.state == cri.SANDBOX_READY
        assert status.status.metadata == config.metadata
        assert status.status.labels["app"] == "web"
        assert status.status.annotations["pycri.test/annotation"] == "yes"
        assert status.status.created_at > 0

        listed = client.list_pod_sandbox().items
        assert [p.id for p in listed if p.id == pod_id] == [pod_id]

        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        status = client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
        assert status.status.state == cri.SANDBOX_NOTREADY
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))

        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        assert pod_id not in [p.id for p in client.list_pod_sandbox().items]
        with pytest.raises(NotFoundError):
            client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))

    def test_duplicate_pod_name_is_already_exists(
        self, client: CRIClient, pods: PodFactory
    ) -> None:
        _, config = pods.run()
        with pytest.raises(AlreadyExistsError):
            client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config))

    def test_kubernetes_shaped_names(self, client: CRIClient, pods: PodFactory) -> None:
        """The names a node really sees: engines limit theirs, the CRI does not."""
        shapes = {
            "deployment": ("coredns-5d78c9869d-x7k2p", "kube-system"),
            "statefulset": ("etcd-control-plane-0", "kube-system"),
            "longest": ("p" * 245 + uuid.uuid4().hex[:8], "n" * 63),
            "doubled separators": ("a--b..c.-d-.e", "x--y"),
            "upper case": ("MyPod.A", "Default"),
            "no namespace": ("web", ""),
            "long, differs at the end, a": ("x" * 200 + "-a", "kube-system"),
            "long, differs at the end, b": ("x" * 200 + "-b", "kube-system"),
        }
        made: dict[str, tuple[str, cri.PodSandboxConfig, str]] = {}
        for shape, (name, namespace) in shapes.items():
            config = pods.config(shape=shape.replace(" ", "-").replace(",", ""))
            config.metadata.name, config.metadata.namespace = name, namespace
            config.metadata.attempt = 3
            config.hostname = "shaped"
            pod_id, _ = pods.run(config)
            container_id = pods.container(pod_id, config, "c" * 63, ["sleep", "60"])
            made[shape] = (pod_id, config, container_id)

        listed = {p.id: p for p in client.list_pod_sandbox().items}
        containers = {c.id: c for c in client.list_containers().containers}
        for shape, (pod_id, config, container_id) in made.items():
            assert listed[pod_id].metadata == config.metadata, shape
            status = client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
            assert status.status.metadata == config.metadata, shape
            assert containers[container_id].metadata.name == "c" * 63, shape
            assert self.status(client, container_id).state == cri.CONTAINER_RUNNING, shape
            only = cri.PodSandboxFilter(label_selector={"shape": config.labels["shape"]})
            found = client.list_pod_sandbox(cri.ListPodSandboxRequest(filter=only)).items
            assert [p.id for p in found] == [pod_id], shape
            with pytest.raises(AlreadyExistsError):
                client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config))

    def test_pod_without_metadata_is_invalid(self, client: CRIClient) -> None:
        with pytest.raises(InvalidArgumentError, match="metadata"):
            client.run_pod_sandbox(cri.RunPodSandboxRequest(config=cri.PodSandboxConfig()))

    def test_unknown_ids(self, client: CRIClient) -> None:
        missing = "0" * 64
        with pytest.raises(NotFoundError):
            client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=missing))
        with pytest.raises(NotFoundError):
            client.container_status(cri.ContainerStatusRequest(container_id=missing))
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=missing))
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=missing))
        client.stop_container(cri.StopContainerRequest(container_id=missing))
        client.remove_container(cri.RemoveContainerRequest(container_id=missing))

    def test_pod_filters(self, client: CRIClient, pods: PodFactory) -> None:
        ready_id, _ = pods.run(pods.config(tier="front"))
        stopped_id, _ = pods.run(pods.config(tier="back"))
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=stopped_id))

        def ids(f: cri.PodSandboxFilter) -> set[str]:
            items = client.list_pod_sandbox(cri.ListPodSandboxRequest(filter=f)).items
            return {p.id for p in items} & {ready_id, stopped_id}

        assert ids(cri.PodSandboxFilter(id=ready_id[:12])) == {ready_id}
        ready = cri.PodSandboxStateValue(state=cri.SANDBOX_READY)
        assert ids(cri.PodSandboxFilter(state=ready)) == {ready_id}
        assert ids(cri.PodSandboxFilter(label_selector={"tier": "back"})) == {stopped_id}
        assert ids(cri.PodSandboxFilter(label_selector={"pycri.test": "conformance"})) == {
            ready_id,
            stopped_id,
        }

    # -- containers ----------------------------------------------------------------

    def test_container_lifecycle(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        pod_id, pod_config = pods.run()
        container_id = pods.container(pod_id, pod_config, "app", ["sleep", "60"], start=False)
        created = self.status(client, container_id)
        assert created.state == cri.CONTAINER_CREATED
        assert created.metadata.name == "app"
        assert created.created_at > 0
        assert created.labels["pycri.test"] == "conformance"
        assert created.annotations["pycri.test/annotation"] == "app"

        client.start_container(cri.StartContainerRequest(container_id=container_id))
        running = self.status(client, container_id)
        assert running.state == cri.CONTAINER_RUNNING
        assert running.started_at >= running.created_at
        with pytest.raises(FailedPreconditionError):
            client.start_container(cri.StartContainerRequest(container_id=container_id))

        listed = client.list_containers(
            cri.ListContainersRequest(filter=cri.ContainerFilter(pod_sandbox_id=pod_id))
        ).containers
        assert [(c.id, c.pod_sandbox_id, c.state) for c in listed] == [
            (container_id, pod_id, cri.CONTAINER_RUNNING)
        ]

        client.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=2))
        stopped = self.status(client, container_id)
        assert stopped.state == cri.CONTAINER_EXITED
        assert stopped.finished_at >= stopped.started_at
        assert stopped.exit_code != 0
        client.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=2))

        client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
        client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
        with pytest.raises(NotFoundError):
            self.status(client, container_id)

    def test_exit_code_reason_and_log(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        pod_id, pod_config = pods.run()
        ok = pods.container(pod_id, pod_config, "ok", ["echo", "hi"])
        bad = pods.container(pod_id, pod_config, "bad", ["sh", "-c", "echo oops >&2; exit 3"])

        ok_status = self.wait_exited(client, ok, conformance)
        assert (ok_status.exit_code, ok_status.reason) == (0, "Completed")
        bad_status = self.wait_exited(client, bad, conformance)
        assert (bad_status.exit_code, bad_status.reason) == (3, "Error")

        log_path = Path(pod_config.log_directory) / "ok.log"
        assert ok_status.log_path == str(log_path)
        wait_for(lambda: log_path.exists() and log_path.read_bytes() != b"", 10, "the ok log")
        lines = [parse_log_line(raw) for raw in log_path.read_bytes().splitlines()]
        assert [(ln.stream, ln.partial, ln.message) for ln in lines] == [("stdout", False, b"hi")]

        bad_log = Path(pod_config.log_directory) / "bad.log"
        wait_for(lambda: bad_log.exists() and bad_log.read_bytes() != b"", 10, "the bad log")
        bad_lines = [parse_log_line(raw) for raw in bad_log.read_bytes().splitlines()]
        assert [(ln.stream, ln.message) for ln in bad_lines] == [("stderr", b"oops")]

    def test_log_is_complete_once_exited(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """The kubelet (and critest) read the log as soon as the status says EXITED."""
        pod_id, pod_config = pods.run()

        def once(index: int) -> list[bytes]:
            name = f"exits-{index}"
            container_id = pods.container(pod_id, pod_config, name, ["echo", f"line {index}"])
            log_path = Path(pod_config.log_directory) / f"{name}.log"
            deadline = time.monotonic() + conformance.state_timeout
            # read in the same breath as the first status that says EXITED
            while self.status(client, container_id).state != cri.CONTAINER_EXITED:
                assert time.monotonic() < deadline, f"{name} did not exit"
                time.sleep(0.01)
            raw = log_path.read_bytes() if log_path.exists() else b""
            client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
            return [parse_log_line(line).message for line in raw.splitlines()]

        rounds = conformance.exit_log_rounds
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = list(pool.map(once, range(rounds)))
        lost = [i for i, lines in enumerate(found) if lines != [f"line {i}".encode()]]
        assert not lost, f"{len(lost)} of {rounds} logs incomplete at EXITED: {lost[:10]}"

    def test_exec_sync(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        pod_id, pod_config = pods.run()
        container_id = pods.container(pod_id, pod_config, "app", ["sleep", "60"])
        result = client.exec_sync(
            cri.ExecSyncRequest(
                container_id=container_id, cmd=["sh", "-c", "echo $GREETING; exit 4"], timeout=10
            )
        )
        assert (result.stdout, result.exit_code) == (b"hello\n", 4)
        with pytest.raises(DeadlineExceededError):
            client.exec_sync(
                cri.ExecSyncRequest(container_id=container_id, cmd=["sleep", "30"], timeout=1)
            )
        with pytest.raises(InvalidArgumentError):
            client.exec_sync(cri.ExecSyncRequest(container_id=container_id, cmd=[]))

    def test_container_status_user(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """ContainerStatus.user is who the first process is, as ``id`` in the container says."""
        pod_id, pod_config = pods.run()
        cases: list[tuple[str, str, list[int]]] = [("who", conformance.image, [])]
        pulled = False
        if conformance.group_image:
            pulled = not client.image_status(
                cri.ImageStatusRequest(image=cri.ImageSpec(image=conformance.group_image))
            ).HasField("image")
            if pulled:
                client.pull_image(
                    cri.PullImageRequest(image=cri.ImageSpec(image=conformance.group_image))
                )
            # Merge: the groups the image's /etc/group gives uid 1000 are kept
            cases.append(("who-in-group", conformance.group_image, [50000]))
        try:
            for name, image, image_groups in cases:
                context = cri.LinuxContainerSecurityContext(
                    run_as_user=cri.Int64Value(value=1000), supplemental_groups=[1234, 5678]
                )
                container_id = pods.container(
                    pod_id,
                    pod_config,
                    name,
                    ["sleep", "3600"],
                    image=image,
                    linux=cri.LinuxContainerConfig(security_context=context),
                )

                def run(*cmd: str, container_id: str = container_id) -> list[int]:
                    request = cri.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=30)
                    result = client.exec_sync(request)
                    assert result.exit_code == 0, result.stderr
                    return [int(n) for n in result.stdout.split()]

                status = self.status(client, container_id)
                assert status.HasField("user"), "a running container reports its user"
                user = status.user.linux
                assert (user.uid, [user.uid]) == (1000, run("id", "-u"))
                assert [user.gid] == run("id", "-g")
                assert sorted(user.supplemental_groups) == sorted(run("id", "-G"))
                assert {1234, 5678, user.gid, *image_groups} <= set(user.supplemental_groups)

                # not running: what the process was given, or nothing (an engine that
                # records no resolved user), never something else
                client.stop_container(cri.StopContainerRequest(container_id=container_id))
                stopped = self.status(client, container_id)
                if stopped.HasField("user"):
                    assert (stopped.user.linux.uid, stopped.user.linux.gid) == (user.uid, user.gid)
                    assert sorted(stopped.user.linux.supplemental_groups) == sorted(
                        user.supplemental_groups
                    )
        finally:
            pods.cleanup()
            pods.created.clear()
            if pulled:
                client.remove_image(
                    cri.RemoveImageRequest(image=cri.ImageSpec(image=conformance.group_image))
                )

    def test_create_in_stopped_pod_fails(self, client: CRIClient, pods: PodFactory) -> None:
        pod_id, pod_config = pods.run()
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        with pytest.raises(FailedPreconditionError):
            pods.container(pod_id, pod_config, "late", ["sleep", "1"], start=False)

    def test_duplicate_container_name_is_already_exists(
        self, client: CRIClient, pods: PodFactory
    ) -> None:
        pod_id, pod_config = pods.run()
        pods.container(pod_id, pod_config, "twin", ["sleep", "60"], start=False)
        with pytest.raises(AlreadyExistsError):
            pods.container(pod_id, pod_config, "twin", ["sleep", "60"], start=False)

    def test_container_filters(self, client: CRIClient, pods: PodFactory) -> None:
        pod_id, pod_config = pods.run()
        running = pods.container(pod_id, pod_config, "run", ["sleep", "60"], role="a")
        created = pods.container(pod_id, pod_config, "wait", ["sleep", "60"], start=False, role="b")
        other_pod, other_config = pods.run()
        elsewhere = pods.container(other_pod, other_config, "run", ["sleep", "60"], role="a")

        def ids(f: cri.ContainerFilter) -> set[str]:
            found = client.list_containers(cri.ListContainersRequest(filter=f)).containers
            return {c.id for c in found} & {running, created, elsewhere}

        assert ids(cri.ContainerFilter(pod_sandbox_id=pod_id)) == {running, created}
        state = cri.ContainerStateValue(state=cri.CONTAINER_CREATED)
        assert ids(cri.ContainerFilter(state=state)) == {created}
        assert ids(cri.ContainerFilter(label_selector={"role": "a"})) == {running, elsewhere}
        assert ids(cri.ContainerFilter(id=running[:12])) == {running}

    def test_remove_pod_removes_its_containers(self, client: CRIClient, pods: PodFactory) -> None:
        pod_id, pod_config = pods.run()
        container_id = pods.container(pod_id, pod_config, "app", ["sleep", "60"])
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        with pytest.raises(NotFoundError):
            self.status(client, container_id)
        assert pod_id not in {p.id for p in client.list_pod_sandbox().items}

    def test_reopen_log_and_stats(self, client: CRIClient, pods: PodFactory) -> None:
        pod_id, pod_config = pods.run()
        container_id = pods.container(pod_id, pod_config, "app", ["sleep", "60"])
        log_path = Path(pod_config.log_directory) / "app.log"
        wait_for(log_path.exists, 10, "the log file")
        log_path.rename(log_path.with_suffix(".log.1"))
        client.reopen_container_log(cri.ReopenContainerLogRequest(container_id=container_id))
        assert log_path.exists()

        stats = client.container_stats(cri.ContainerStatsRequest(container_id=container_id))
        assert stats.stats.attributes.id == container_id
        listed = client.list_container_stats(
            cri.ListContainerStatsRequest(filter=cri.ContainerStatsFilter(pod_sandbox_id=pod_id))
        ).stats
        assert [s.attributes.id for s in listed] == [container_id]

    def test_stats_while_containers_stop_and_go(self, client: CRIClient, pods: PodFactory) -> None:
        """Stats calls race the containers they list; one stopped or removed meanwhile must
        not fail the call (Docker answers such a container's stats with an empty body)."""
        pod_id, pod_config = pods.run()
        failures: list[CRIError] = []
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                try:
                    client.list_pod_sandbox_stats(cri.ListPodSandboxStatsRequest())
                    client.list_container_stats(cri.ListContainerStatsRequest())
                except CRIError as err:
                    failures.append(err)
                    return

        pollers = [threading.Thread(target=poll, daemon=True) for _ in range(4)]
        for poller in pollers:
            poller.start()
        try:
            for round_ in range(3):
                ids = [
                    pods.container(pod_id, pod_config, f"churn-{round_}-{n}", ["sleep", "60"])
                    for n in range(4)
                ]
                brief_pod, _ = pods.run(pods.config(f"brief-{round_}"))  # and a pod, removed
                time.sleep(0.2)
                for n, container_id in enumerate(ids):
                    if n % 2:  # stopped, then removed; or removed while it runs
                        client.stop_container(
                            cri.StopContainerRequest(container_id=container_id, timeout=0)
                        )
                    client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
                client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=brief_pod))
        finally:
            done.set()
            for poller in pollers:
                poller.join(60)
        assert not failures, failures[0]

    # -- streamed stats ------------------------------------------------------------------

    @staticmethod
    def kube_system_pod(pods: PodFactory, app: str, **labels: str) -> cri.PodSandboxConfig:
        """A pod named the way a Deployment's ReplicaSet names its pods, in kube-system."""
        config = pods.config(**labels)
        suffix = uuid.uuid4().hex
        config.metadata.name = f"{app}-{suffix[:10]}-{suffix[10:15]}"
        config.metadata.namespace = "kube-system"
        return config

    def test_stream_stats_match_the_lists(
        self, client: CRIClient, pods: PodFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """StreamContainerStats / StreamPodSandboxStats: the List forms' stats, same filters,
        in batches of at most STREAM_BATCH."""
        monkeypatch.setattr(rpc_base, "STREAM_BATCH", 2)
        run = uuid.uuid4().hex[:12]
        made: dict[str, list[str]] = {}
        for replica in range(3):
            config = self.kube_system_pod(pods, "coredns", run=run, replica=str(replica))
            pod_id, _ = pods.run(config)
            made[pod_id] = [
                pods.container(pod_id, config, name, ["sleep", "60"], run=run)
                for name in ("coredns", "config-reloader")
            ]
        first_pod, first_containers = next(iter(made.items()))
        mine = {c for containers in made.values() for c in containers}

        def listed(f: cri.ContainerStatsFilter) -> dict[str, cri.ContainerStats]:
            request = cri.ListContainerStatsRequest(filter=f)
            return {s.attributes.id: s for s in client.list_container_stats(request).stats}

        def streamed(
            f: cri.ContainerStatsFilter,
        ) -> tuple[dict[str, cri.ContainerStats], list[int]]:
            request = cri.StreamContainerStatsRequest(filter=f)
            batches = [b.container_stats for b in client.stream_container_stats(request)]
            flat = [s for batch in batches for s in batch]
            assert len({s.attributes.id for s in flat}) == len(flat), "a container twice"
            return {s.attributes.id: s for s in flat}, [len(b) for b in batches]

        container_filters = {
            "label": cri.ContainerStatsFilter(label_selector={"run": run}),
            "pod": cri.ContainerStatsFilter(pod_sandbox_id=first_pod),
            "pod prefix and label": cri.ContainerStatsFilter(
                pod_sandbox_id=first_pod[:13], label_selector={"run": run}
            ),
            "id prefix": cri.ContainerStatsFilter(id=first_containers[1][:13]),
        }
        expected = {
            "label": mine,
            "pod": set(first_containers),
            "pod prefix and label": set(first_containers),
            "id prefix": {first_containers[1]},
        }
        for what, f in container_filters.items():
            by_list = listed(f)
            by_stream, sizes = streamed(f)
            assert set(by_list) == set(by_stream) == expected[what], what
            assert all(0 < size <= 2 for size in sizes), (what, sizes)
            for cid, stats in by_stream.items():
                assert stats.attributes == by_list[cid].attributes, (what, cid)
                assert stats.HasField("cpu"), (what, cid)
                assert stats.HasField("memory"), (what, cid)
        assert streamed(container_filters["label"])[1] == [2, 2, 2]
        everything, _ = streamed(cri.ContainerStatsFilter())
        assert mine <= set(everything)

        def pod_listed(f: cri.PodSandboxStatsFilter) -> dict[str, cri.PodSandboxStats]:
            request = cri.ListPodSandboxStatsRequest(filter=f)
            return {s.attributes.id: s for s in client.list_pod_sandbox_stats(request).stats}

        def pod_streamed(
            f: cri.PodSandboxStatsFilter,
        ) -> tuple[dict[str, cri.PodSandboxStats], list[int]]:
            request = cri.StreamPodSandboxStatsRequest(filter=f)
            batches = [b.pod_sandbox_stats for b in client.stream_pod_sandbox_stats(request)]
            flat = [s for batch in batches for s in batch]
            assert len({s.attributes.id for s in flat}) == len(flat), "a pod twice"
            return {s.attributes.id: s for s in flat}, [len(b) for b in batches]

        pod_filters = {
            "label": (cri.PodSandboxStatsFilter(label_selector={"run": run}), set(made)),
            "labels": (
                cri.PodSandboxStatsFilter(label_selector={"run": run, "replica": "0"}),
                {first_pod},
            ),
            "id prefix": (cri.PodSandboxStatsFilter(id=first_pod[:13]), {first_pod}),
        }
        for what, (pf, want) in pod_filters.items():
            pods_by_list = pod_listed(pf)
            pods_by_stream, sizes = pod_streamed(pf)
            assert set(pods_by_list) == set(pods_by_stream) == want, what
            assert all(0 < size <= 2 for size in sizes), (what, sizes)
            for pod_id, pod_stats in pods_by_stream.items():
                assert pod_stats.attributes == pods_by_list[pod_id].attributes, (what, pod_id)
                assert {c.attributes.id for c in pod_stats.linux.containers} == {
                    c.attributes.id for c in pods_by_list[pod_id].linux.containers
                }, (what, pod_id)
        assert pod_streamed(pod_filters["label"][0])[1] == [2, 1]
        everything_pods, _ = pod_streamed(cri.PodSandboxStatsFilter())
        assert set(made) <= set(everything_pods)

    def test_stream_stats_of_unknown_ids(self, client: CRIClient, pods: PodFactory) -> None:
        """Nothing matches: no message at all (the List forms answer an empty list)."""
        missing = "0" * 64
        pod_id, config = pods.run(self.kube_system_pod(pods, "kube-proxy"))
        pods.container(pod_id, config, "kube-proxy", ["sleep", "60"])
        requests = [
            cri.ContainerStatsFilter(id=missing),
            cri.ContainerStatsFilter(pod_sandbox_id=missing),
            cri.ContainerStatsFilter(pod_sandbox_id=pod_id, label_selector={"no": "such"}),
        ]
        for f in requests:
            request = cri.StreamContainerStatsRequest(filter=f)
            assert list(client.stream_container_stats(request)) == [], f
        request_pods = cri.StreamPodSandboxStatsRequest(
            filter=cri.PodSandboxStatsFilter(id=missing)
        )
        assert list(client.stream_pod_sandbox_stats(request_pods)) == []
        bad = cri.ContainerStatsFilter(label_selector={"bad\x00key": "x"})
        with pytest.raises(InvalidArgumentError):
            list(client.stream_container_stats(cri.StreamContainerStatsRequest(filter=bad)))
        bad_pod = cri.PodSandboxStatsFilter(id="not an id")
        with pytest.raises(InvalidArgumentError):
            list(client.stream_pod_sandbox_stats(cri.StreamPodSandboxStatsRequest(filter=bad_pod)))

    def test_stream_stats_stop_when_the_client_goes(
        self, client: CRIClient, pods: PodFactory, shim: Shim, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A client that cancels after the first batch: the server fetches no more batches."""
        monkeypatch.setattr(rpc_base, "STREAM_BATCH", 1)
        run = uuid.uuid4().hex[:12]
        config = self.kube_system_pod(pods, "kube-proxy", run=run)
        pod_id, _ = pods.run(config)
        for n in range(4):
            pods.container(pod_id, config, f"proxy-{n}", ["sleep", "60"], run=run)
        calls: list[list[str]] = []
        cancelled = threading.Event()
        fetch = shim.container_stats

        def counting(container_ids: Sequence[str]) -> list[cri.ContainerStats]:
            calls.append(list(container_ids))
            if len(calls) == 2:
                cancelled.wait(10)  # the second batch is due when the client has gone
            return fetch(container_ids)

        monkeypatch.setattr(shim, "container_stats", counting)
        request = cri.StreamContainerStatsRequest(
            filter=cri.ContainerStatsFilter(label_selector={"run": run})
        )
        stream = client.stream_container_stats(request)
        first = next(stream)
        assert len(first.container_stats) == 1
        stream.close()  # cancels the call
        cancelled.set()
        time.sleep(0.5)
        assert 1 <= len(calls) <= 2, calls
        # the server is fine: the next stream is whole
        monkeypatch.setattr(shim, "container_stats", fetch)
        assert sum(len(b.container_stats) for b in client.stream_container_stats(request)) == 4

    # -- pod sandbox resources (in-place pod resize) -------------------------------------

    @staticmethod
    def recorded_resources(client: CRIClient, pod_id: str) -> dict[str, Any]:
        """What verbose PodSandboxStatus shows of them: containerd's ``info`` keys."""
        request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)
        details = json.loads(client.pod_sandbox_status(request).info["info"])
        return {key: details[key] for key in ("overhead", "resources") if key in details}

    @staticmethod
    def resources_store(shim: Shim, pod_id: str) -> SandboxResources:
        store = shim.pod_sandbox_resources_store(pod_id)
        if store is None:
            pytest.skip(f"the {shim.name} shim keeps no pod sandbox resources (UNIMPLEMENTED)")
        return store

    def test_update_pod_sandbox_resources(
        self, client: CRIClient, pods: PodFactory, shim: Shim
    ) -> None:
        """What the kubelet reports after resizing a pod: recorded, shown, replaced, and
        gone with the pod."""
        config = self.kube_system_pod(pods, "metrics-server")
        pod_id, _ = pods.run(config)
        pods.container(pod_id, config, "metrics-server", ["sleep", "60"])
        store = self.resources_store(shim, pod_id)
        assert self.recorded_resources(client, pod_id) == {}

        mib = 1 << 20
        overhead = cri.LinuxContainerResources(
            cpu_period=100_000, cpu_quota=25_000, cpu_shares=256, memory_limit_in_bytes=120 * mib
        )
        resources = cri.LinuxContainerResources(
            cpu_period=100_000,
            cpu_quota=50_000,
            cpu_shares=512,
            memory_limit_in_bytes=256 * mib,
            cpuset_cpus="0",
            hugepage_limits=[cri.HugepageLimit(page_size="2MB", limit=0)],
            unified={"memory.high": str(200 * mib)},
        )
        client.update_pod_sandbox_resources(
            cri.UpdatePodSandboxResourcesRequest(
                pod_sandbox_id=pod_id, overhead=overhead, resources=resources
            )
        )
        assert self.recorded_resources(client, pod_id) == {
            "overhead": {
                "linux": {
                    "cpu_period": 100_000,
                    "cpu_quota": 25_000,
                    "cpu_shares": 256,
                    "memory_limit_in_bytes": 120 * mib,
                }
            },
            "resources": {
                "linux": {
                    "cpu_period": 100_000,
                    "cpu_quota": 50_000,
                    "cpu_shares": 512,
                    "memory_limit_in_bytes": 256 * mib,
                    "cpuset_cpus": "0",
                    "hugepage_limits": [{"page_size": "2MB", "limit": 0}],
                    "unified": {"memory.high": str(200 * mib)},
                }
            },
        }
        # the shim's own verbose info is still there
        request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)
        assert len(json.loads(client.pod_sandbox_status(request).info["info"])) > 2
        if store.directory is not None:  # kept on disk: a restarted server reads it back
            assert SandboxResources(store.directory).load(pod_id) == PodResources(
                overhead, resources
            )

        # the next resize replaces it all; an id prefix will do; an unlimited pod reads -1
        unlimited = cri.LinuxContainerResources(
            cpu_period=100_000, cpu_quota=-1, cpu_shares=1024, memory_limit_in_bytes=-1
        )
        client.update_pod_sandbox_resources(
            cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id[:13], resources=unlimited)
        )
        assert self.recorded_resources(client, pod_id) == {
            "resources": {
                "linux": {
                    "cpu_period": 100_000,
                    "cpu_quota": -1,
                    "cpu_shares": 1024,
                    "memory_limit_in_bytes": -1,
                }
            }
        }
        # a stopped pod still takes it (as containerd's does); a removed one leaves nothing
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        client.update_pod_sandbox_resources(
            cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id, overhead=overhead)
        )
        assert set(self.recorded_resources(client, pod_id)) == {"overhead"}
        assert pod_id in store.pod_ids()
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        assert pod_id not in store.pod_ids()
        with pytest.raises(NotFoundError):
            client.update_pod_sandbox_resources(
                cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id, resources=unlimited)
            )
        assert pod_id not in store.pod_ids()
        if store.directory is not None:
            assert not [n for n in os.listdir(store.directory) if n.startswith(pod_id)]

    def test_update_pod_sandbox_resources_refusals(
        self, client: CRIClient, pods: PodFactory, shim: Shim
    ) -> None:
        """NOT_FOUND for a pod that does not exist, INVALID_ARGUMENT for resources no cgroup
        can take (UpdateContainerResources refuses the same), and nothing recorded."""
        config = self.kube_system_pod(pods, "kube-state-metrics")
        pod_id, _ = pods.run(config)
        container_id = pods.container(pod_id, config, "kube-state-metrics", ["sleep", "60"])
        fine = cri.LinuxContainerResources(cpu_shares=512)
        if shim.pod_sandbox_resources_store(pod_id) is None:
            with pytest.raises(UnimplementedError):
                client.update_pod_sandbox_resources(
                    cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id, resources=fine)
                )
            return

        for missing in ("0" * 64, "0123456789ab"):
            with pytest.raises(NotFoundError):
                client.update_pod_sandbox_resources(
                    cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=missing, resources=fine)
                )
        with pytest.raises(InvalidArgumentError, match="pod_sandbox_id"):
            client.update_pod_sandbox_resources(
                cri.UpdatePodSandboxResourcesRequest(resources=fine)
            )
        bad = {
            "cpu_shares": cri.LinuxContainerResources(cpu_shares=-512),
            "cpu_period": cri.LinuxContainerResources(cpu_period=10),
            "oom_score_adj": cri.LinuxContainerResources(oom_score_adj=2000),
            "cpuset_cpus": cri.LinuxContainerResources(cpuset_cpus="0-"),
            "memory_swap_limit_in_bytes": cri.LinuxContainerResources(
                memory_limit_in_bytes=256 << 20, memory_swap_limit_in_bytes=128 << 20
            ),
            "unified key": cri.LinuxContainerResources(unified={"../../cgroup.procs": "1"}),
        }
        for field, resources in bad.items():
            for where in ("overhead", "resources"):
                request = cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id)
                getattr(request, where).CopyFrom(resources)
                with pytest.raises(InvalidArgumentError, match=f"{where}.{field}"):
                    client.update_pod_sandbox_resources(request)
            with pytest.raises(InvalidArgumentError, match=f"linux.{field}"):
                client.update_container_resources(
                    cri.UpdateContainerResourcesRequest(container_id=container_id, linux=resources)
                )
        assert self.recorded_resources(client, pod_id) == {}

    def test_pod_sandbox_resources_of_a_pod_removed_behind_our_back(
        self, client: CRIClient, pods: PodFactory, shim: Shim
    ) -> None:
        """A pod the engine lost (removed while the server was down): the next
        UpdatePodSandboxResources sweeps its record away."""
        gone_id, _ = pods.run(self.kube_system_pod(pods, "kube-proxy"))
        kept_id, _ = pods.run(self.kube_system_pod(pods, "kube-proxy"))
        store = self.resources_store(shim, gone_id)
        fine = cri.LinuxContainerResources(cpu_period=100_000, cpu_shares=102)
        for pod_id in (gone_id, kept_id):
            client.update_pod_sandbox_resources(
                cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id, resources=fine)
            )
        shim.stop_pod_sandbox(gone_id)  # the shim alone: core never hears of it
        shim.remove_pod_sandbox(gone_id)
        assert gone_id in store.pod_ids()
        client.update_pod_sandbox_resources(
            cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=kept_id, resources=fine)
        )
        assert gone_id not in store.pod_ids()
        assert kept_id in store.pod_ids()

    # -- images ----------------------------------------------------------------------

    def test_metric_descriptors(self, client: CRIClient) -> None:
        descriptors = client.list_metric_descriptors(cri.ListMetricDescriptorsRequest()).descriptors
        by_name = {d.name: d for d in descriptors}
        assert len(by_name) == len(descriptors), "a metric is described twice"
        missing = REQUIRED_METRICS - set(by_name)
        assert not missing, f"not described: {sorted(missing)}"
        for d in descriptors:
            assert d.help, d.name
            assert d.label_keys, d.name

    def test_pod_sandbox_metrics(self, client: CRIClient, pods: PodFactory) -> None:
        """A pod whose container did some work has every metric, with values that add up."""
        keys = {
            d.name: len(d.label_keys)
            for d in client.list_metric_descriptors(cri.ListMetricDescriptorsRequest()).descriptors
        }
        pod_id, pod_config = pods.run()
        container_id = pods.container(pod_id, pod_config, "busy", ["sleep", "60"])
        work = "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; echo $i > /tmp/work"
        done = client.exec_sync(
            cri.ExecSyncRequest(container_id=container_id, cmd=["sh", "-c", work], timeout=60)
        )
        assert done.exit_code == 0, done.stderr

        def sample() -> dict[tuple[str, str, tuple[str, ...]], cri.Metric]:
            listed = client.list_pod_sandbox_metrics(cri.ListPodSandboxMetricsRequest())
            mine = [m for m in listed.pod_metrics if m.pod_sandbox_id == pod_id]
            assert len(mine) == 1, f"pod {pod_id[:13]} is listed {len(mine)} times"
            pod = mine[0]
            assert [c.container_id for c in pod.container_metrics] == [container_id]
            out = {}
            series = [(pod_id, m) for m in pod.metrics] + [
                (container_id, m) for m in pod.container_metrics[0].metrics
            ]
            for owner, m in series:
                assert m.name in keys, f"{m.name} is not described"
                assert len(m.label_values) == keys[m.name], m
                out[(owner, m.name, tuple(m.label_values))] = m
            return out

        first = sample()
        missing = REQUIRED_METRICS - {name for _, name, _ in first}
        assert not missing, f"missing from the pod's metrics: {sorted(missing)}"

        def value(name: str) -> int:
            found = [
                m.value.value for (o, n, _), m in first.items() if (o, n) == (container_id, name)
            ]
            assert found, f"the container has no {name}"
            return max(found)

        assert value("container_cpu_usage_seconds_total") > 0
        assert value("container_memory_working_set_bytes") > 0
        time.sleep(0.2)
        second = sample()
        for key, before in first.items():
            after = second.get(key)
            if before.metric_type == cri.COUNTER and after is not None:
                assert after.value.value >= before.value.value, f"{key} went backwards"

        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        listed = client.list_pod_sandbox_metrics(cri.ListPodSandboxMetricsRequest())
        assert pod_id not in {m.pod_sandbox_id for m in listed.pod_metrics}

    def test_image_lifecycle(self, client: CRIClient, conformance: ConformanceConfig) -> None:
        spec = cri.ImageSpec(image=conformance.pull_image)
        client.remove_image(cri.RemoveImageRequest(image=spec))
        assert not client.image_status(cri.ImageStatusRequest(image=spec)).HasField("image")

        ref = client.pull_image(cri.PullImageRequest(image=spec)).image_ref
        assert ref
        image = client.image_status(cri.ImageStatusRequest(image=spec)).image
        assert conformance.pull_image in image.repo_tags
        assert image.size > 0
        listed = client.list_images(
            cri.ListImagesRequest(filter=cri.ImageFilter(image=spec))
        ).images
        assert [i.id for i in listed] == [image.id]
        # every name the image is listed under finds it again (critest checks each)
        assert image.repo_digests
        for name in [image.id, *image.repo_tags, *image.repo_digests]:
            again = client.image_status(cri.ImageStatusRequest(image=cri.ImageSpec(image=name)))
            assert again.image == image, name

        client.remove_image(cri.RemoveImageRequest(image=spec))
        client.remove_image(cri.RemoveImageRequest(image=spec))
        assert not client.image_status(cri.ImageStatusRequest(image=spec)).HasField("image")

    @staticmethod
    def image(client: CRIClient, ref: str) -> cri.Image | None:
        found = client.image_status(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref)))
        return found.image if found.HasField("image") else None

    @staticmethod
    def tagged(client: CRIClient) -> dict[str, cri.Image]:
        """ListImages by tag."""
        return {tag: i for i in client.list_images().images for tag in i.repo_tags}

    def test_sandbox_image_is_pinned(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """So that the kubelet's image GC (and ``crictl rmi --prune``) keep it."""
        pods.run()  # the sandbox image is there now, pulled if it was not
        listed = self.tagged(client)
        assert listed[conformance.sandbox_image].pinned
        assert not listed[conformance.image].pinned
        sandbox = self.image(client, conformance.sandbox_image)
        assert sandbox is not None
        assert sandbox.pinned
        by_id = self.image(client, sandbox.id)
        assert by_id is not None
        assert by_id.pinned
        other = self.image(client, conformance.image)
        assert other is not None
        assert not other.pinned

    def test_remove_image_of_a_running_container(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """containerd's CRI: the image goes at once, its containers keep running."""
        spec = cri.ImageSpec(image=conformance.pull_image)
        client.pull_image(cri.PullImageRequest(image=spec))
        pod_id, pod = pods.run()
        container_id = pods.container(
            pod_id, pod, "user", ["sleep", "300"], image=conformance.pull_image
        )
        client.remove_image(cri.RemoveImageRequest(image=spec))
        assert self.image(client, conformance.pull_image) is None
        assert conformance.pull_image not in self.tagged(client)
        assert self.status(client, container_id).state == cri.CONTAINER_RUNNING
        result = client.exec_sync(
            cri.ExecSyncRequest(container_id=container_id, cmd=["echo", "alive"], timeout=20)
        )
        assert result.stdout == b"alive\n"
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

    def test_sandbox_image_removed_under_a_running_pod(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """The pod keeps running; the next RunPodSandbox pulls the image again, pinned."""
        if not conformance.sandbox_image_removable:
            pytest.skip("this run's sandbox image is shared; the shim's own tests remove theirs")
        first, _ = pods.run()
        spec = cri.ImageSpec(image=conformance.sandbox_image)
        client.remove_image(cri.RemoveImageRequest(image=spec))
        assert self.image(client, conformance.sandbox_image) is None
        second, _ = pods.run()
        for pod_id in (first, second):
            status = client.pod_sandbox_status(cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
            assert status.status.state == cri.SANDBOX_READY
        again = self.image(client, conformance.sandbox_image)
        assert again is not None
        assert again.pinned

    def test_bad_image_reference_is_invalid(self, client: CRIClient) -> None:
        with pytest.raises(InvalidArgumentError, match="image"):
            client.pull_image(cri.PullImageRequest(image=cri.ImageSpec(image="Not A Ref!")))
        with pytest.raises(InvalidArgumentError, match="image"):
            client.image_status(cri.ImageStatusRequest(image=cri.ImageSpec()))

    def test_image_fs_info(self, client: CRIClient) -> None:
        info = client.image_fs_info()
        assert info.image_filesystems
        assert info.image_filesystems[0].fs_id.mountpoint

    # -- image volumes ---------------------------------------------------------------

    def image_volume_leftovers(self, shim: Shim) -> list[str]:
        """What of the shim's image volumes is still there (mounts, trees, snapshots).

        Engine shims override this; the check runs once every container is removed.
        """
        return []

    def test_image_volume(
        self, client: CRIClient, pods: PodFactory, shim: Shim, conformance: ConformanceConfig
    ) -> None:
        image = client.image_status(
            cri.ImageStatusRequest(image=cri.ImageSpec(image=conformance.image))
        ).image
        assert image.id, f"{conformance.image} is not in the runtime"
        pod_id, pod_config = pods.run()
        target = "/mnt/image-volume"

        def create(name: str, *, readonly: bool = True, sub_path: str = "", ref: str = "") -> str:
            mount = cri.Mount(
                container_path=target,
                readonly=readonly,
                image=cri.ImageSpec(image=ref or conformance.image),
                image_sub_path=sub_path,
            )
            config = cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name=name),
                image=cri.ImageSpec(image=conformance.image),
                command=["sleep", "60"],
                mounts=[mount],
            )
            return client.create_container(
                cri.CreateContainerRequest(
                    pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config
                )
            ).container_id

        def run(container_id: str, *cmd: str) -> cri.ExecSyncResponse:
            return client.exec_sync(
                cri.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=10)
            )

        with pytest.raises(InvalidArgumentError, match="read-only"):
            create("writable", readonly=False)
        with pytest.raises(InvalidArgumentError, match="does not exist"):
            create("no-such-sub-path", sub_path="not-existing")
        with pytest.raises(InvalidArgumentError, match=r"\.\."):
            create("escaping", sub_path="../etc")
        with pytest.raises(InvalidArgumentError, match="not a directory"):
            create("file-sub-path", sub_path="etc/passwd")
        with pytest.raises(NotFoundError):
            create("absent-image", ref="docker.io/pycri/no-such-image-volume:0")
        assert self.image_volume_leftovers(shim) == []  # refused creates leave nothing

        whole = create("whole", ref=image.id)  # by id, as critest and the kubelet do
        sub = create("sub", sub_path="etc")
        for container_id in (whole, sub):
            client.start_container(cri.StartContainerRequest(container_id=container_id))

        assert run(whole, "cat", f"{target}/etc/passwd").stdout.startswith(b"root:")
        touched = run(whole, "touch", f"{target}/written")
        assert touched.exit_code != 0
        assert b"Read-only file system" in touched.stderr
        executed = run(whole, f"{target}/bin/sh", "-c", "echo ran")
        assert (executed.exit_code, executed.stdout) == (0, b"ran\n")
        assert run(sub, "cat", f"{target}/passwd").stdout.startswith(b"root:")
        assert run(sub, "test", "-e", f"{target}/etc/passwd").exit_code != 0

        for container_id, requested, sub_path in (
            (whole, image.id, ""),
            (sub, conformance.image, "etc"),
        ):
            mounts = [m for m in self.status(client, container_id).mounts if m.image.image]
            assert [
                (m.container_path, m.readonly, m.image.image, m.image.image_ref, m.image_sub_path)
                for m in mounts
            ] == [(target, True, requested, image.id, sub_path)]

        client.remove_container(cri.RemoveContainerRequest(container_id=whole))
        assert run(sub, "cat", f"{target}/group").stdout.startswith(b"root:")  # still there
        client.remove_container(cri.RemoveContainerRequest(container_id=sub))
        assert self.image_volume_leftovers(shim) == []

    # -- recursive read-only mounts (KEP-3857) ------------------------------------

    @staticmethod
    def _create_with_mounts(
        client: CRIClient,
        pod_id: str,
        pod: cri.PodSandboxConfig,
        image: str,
        mounts: list[cri.Mount],
        start: bool = True,
    ) -> str:
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=f"rro-{uuid.uuid4().hex[:8]}"),
            image=cri.ImageSpec(image=image),
            command=["sleep", "300"],
            mounts=mounts,
        )
        request = cri.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=config, sandbox_config=pod
        )
        container_id = client.create_container(request).container_id
        if start:
            client.start_container(cri.StartContainerRequest(container_id=container_id))
        return container_id

    def test_recursive_read_only_mounts(
        self,
        client: CRIClient,
        pods: PodFactory,
        conformance: ConformanceConfig,
        shim: Shim,
        tmp_path: Path,
    ) -> None:
        """Every level read-only, the CRI's refusals, and no staging left behind."""
        features = {h.name: h.features for h in client.status().runtime_handlers}[""]
        pod_id, pod = pods.run()
        host = tmp_path / "rro-host"
        rro = cri.Mount(
            host_path=str(host), container_path="/mnt/rro", readonly=True, recursive_read_only=True
        )
        if not features.recursive_read_only_mounts:
            host.mkdir()
            with pytest.raises(InvalidArgumentError, match="does not support recursive"):
                self._create_with_mounts(client, pod_id, pod, conformance.image, [rro])
            return
        if conformance.real_mounts:
            require_real(os.geteuid() == 0, "mounting a tmpfs under the host path needs root")
        staging = getattr(shim, "staging", None)
        staged_before = set(staging.staged()) if isinstance(staging, RROStaging) else set()

        def refused(why: str, **fields: object) -> None:
            mount = cri.Mount(host_path=str(host), container_path="/mnt/rro", **fields)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError, match=why):
                self._create_with_mounts(client, pod_id, pod, conformance.image, [mount])

        with ExitStack() as stack:
            tree = (
                stack.enter_context(tree_with_submount(host)) if conformance.real_mounts else None
            )
            if tree is None:
                host.mkdir()
            refused("must also be read-only", recursive_read_only=True)
            for propagation in (cri.PROPAGATION_HOST_TO_CONTAINER, cri.PROPAGATION_BIDIRECTIONAL):
                refused(
                    "private propagation",
                    readonly=True,
                    recursive_read_only=True,
                    propagation=propagation,
                )
            plain = cri.Mount(host_path=str(host), container_path="/mnt/ro", readonly=True)
            container_id = self._create_with_mounts(
                client, pod_id, pod, conformance.image, [rro, plain]
            )
            reported = {m.container_path: m for m in self.status(client, container_id).mounts}
            assert reported["/mnt/rro"].host_path == str(host)
            assert reported["/mnt/rro"].readonly
            assert reported["/mnt/rro"].recursive_read_only
            assert reported["/mnt/ro"].readonly
            assert not reported["/mnt/ro"].recursive_read_only
            if tree is not None:
                script = (
                    "touch /mnt/rro/top; touch /mnt/rro/sub/deep; "
                    "touch /mnt/ro/sub/deep && echo plain-submount-writable"
                )
                result = client.exec_sync(
                    cri.ExecSyncRequest(
                        container_id=container_id, cmd=["sh", "-c", script], timeout=30
                    )
                )
                output = (result.stdout + result.stderr).decode()
                assert output.count("Read-only file system") == 2, output
                assert "plain-submount-writable" in output, output
                # the container has its own copy once started: the host's staging is gone
                assert tree.copies() == 0
                # one never started keeps its staging until RemoveContainer
                created = self._create_with_mounts(
                    client, pod_id, pod, conformance.image, [rro], start=False
                )
                assert tree.copies() == 1
                client.remove_container(cri.RemoveContainerRequest(container_id=created))
                assert tree.copies() == 0
            client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
            if tree is not None:
                assert tree.copies() == 0
        if isinstance(staging, RROStaging):
            assert set(staging.staged()) <= staged_before
