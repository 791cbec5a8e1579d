"""The nerdctl shim's container view on real containerd: a cache, never the record.

Lists are answered from memory, fed by ``nerdctl events`` (view.py); what
happens behind pycri's back shows within a second, a broken stream is
replaced and the view rebuilt, and kill -9 of pycri-server loses nothing.
The 1 s is the contract; these tests poll up to POLL seconds (the machine
is shared and loaded) and print the latency they saw.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.errors import CRIError
from pycri.testing.server_process import ServerProcess
from pycri_shims.nerdctl import NerdctlShim
from pycri_shims.nerdctl.host import RuncState
from pycri_shims.nerdctl.testing import (
    created_fixture,  # noqa: F401 - a shared fixture
    nerdctl,
    ready_fixture,  # noqa: F401 - a shared fixture
    shim_fixture,  # noqa: F401 - a shared fixture
)

pytestmark = pytest.mark.real

BUSYBOX = "docker.io/library/busybox:latest"
#: seconds a poll may take before the test fails (the contract is 1 s; the machine is shared)
POLL = 10.0


@pytest.fixture(scope="module")
def runtime(shim: NerdctlShim) -> CRIRuntime:
    return CRIRuntime(shim)


def poll(what: str, done: Callable[[], bool], limit: float = POLL) -> float:
    """Seconds until ``done()``; fails after ``limit``."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < limit, f"{what}: not within {limit:g}s"
        time.sleep(0.01)
    latency = time.monotonic() - started
    print(f"{what}: {latency * 1000:.1f} ms")
    return latency


def fresh(shim: NerdctlShim) -> None:
    poll("view fresh", lambda: shim.view.fresh, 120)


class Kube:
    """Kubernetes-shaped pods and containers through the runtime; all removed at the end."""

    def __init__(self, runtime: CRIRuntime, logs: Path) -> None:
        self.runtime = runtime
        self.logs = logs
        self.pods: list[str] = []

    def pod(self, name: str = "coredns-7db6d8ff4d-x2k9p") -> tuple[str, cri.PodSandboxConfig]:
        uid = str(uuid.uuid4())
        config = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, namespace="kube-system", uid=uid),
            hostname=name,
            log_directory=str(self.logs / uid),
            labels={"k8s-app": "kube-dns", "pod-template-hash": "7db6d8ff4d"},
            linux=cri.LinuxPodSandboxConfig(),
        )
        request = cri.RunPodSandboxRequest(config=config)
        pod_id = self.runtime.run_pod_sandbox(request).pod_sandbox_id
        self.pods.append(pod_id)
        return pod_id, config

    def container(
        self,
        pod: tuple[str, cri.PodSandboxConfig],
        name: str,
        command: list[str],
        start: bool = True,
    ) -> str:
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=name),
            image=cri.ImageSpec(image=BUSYBOX),
            command=command,
            log_path=f"{name}/0.log",
            linux=cri.LinuxContainerConfig(),
        )
        request = cri.CreateContainerRequest(
            pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1]
        )
        container_id = self.runtime.create_container(request).container_id
        if start:
            self.runtime.start_container(cri.StartContainerRequest(container_id=container_id))
        return container_id

    def states(self) -> dict[str, int]:
        listed = self.runtime.list_containers(cri.ListContainersRequest()).containers
        return {c.id: c.state for c in listed}

    def pod_states(self) -> dict[str, int]:
        listed = self.runtime.list_pod_sandbox(cri.ListPodSandboxRequest()).items
        return {p.id: p.state for p in listed}

    def cleanup(self) -> None:
        for pod_id in self.pods:
            self.runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


@pytest.fixture
def kube(runtime: CRIRuntime, tmp_path: Path) -> Iterator[Kube]:
    kube = Kube(runtime, tmp_path / "logs")
    yield kube
    kube.cleanup()


def processes(shim: NerdctlShim, rpc: str) -> float:
    return shim.runner.counter.snapshot().get(rpc, {}).get("processes", 0)


def test_lists_spend_no_process_while_the_view_is_fresh(shim: NerdctlShim, kube: Kube) -> None:
    pod = kube.pod()
    kube.container(pod, "coredns", ["sleep", "3600"])
    kube.container(pod, "config-reloader", ["sleep", "3600"], start=False)
    fresh(shim)
    before = {rpc: processes(shim, rpc) for rpc in ("ListContainers", "ListPodSandbox")}
    for _ in range(20):
        kube.states()
        kube.pod_states()
    for rpc, count in before.items():
        assert processes(shim, rpc) == count, f"{rpc} started a process"
    info = json.loads(shim.info()["containerView"])
    assert info["fresh"] is True


def test_own_changes_show_in_the_very_next_list(shim: NerdctlShim, kube: Kube) -> None:
    fresh(shim)
    pod = kube.pod("kube-proxy-5xq8v")
    assert kube.pod_states()[pod[0]] == cri.SANDBOX_READY
    for attempt in range(3):
        name = f"kube-proxy-{attempt}"
        container_id = kube.container(pod, name, ["sleep", "3600"], start=False)
        assert kube.states()[container_id] == cri.CONTAINER_CREATED
        kube.runtime.start_container(cri.StartContainerRequest(container_id=container_id))
        assert kube.states()[container_id] == cri.CONTAINER_RUNNING
        kube.runtime.stop_container(cri.StopContainerRequest(container_id=container_id))
        assert kube.states()[container_id] == cri.CONTAINER_EXITED
        kube.runtime.remove_container(cri.RemoveContainerRequest(container_id=container_id))
        assert container_id not in kube.states()
    # a command that exits at once: running or exited right after the start, then exited
    quick = kube.container(pod, "init-sysctl", ["true"])
    assert kube.states()[quick] in (cri.CONTAINER_RUNNING, cri.CONTAINER_EXITED)
    poll("the quick exit", lambda: kube.states()[quick] == cri.CONTAINER_EXITED)
    kube.runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod[0]))
    assert kube.pod_states()[pod[0]] == cri.SANDBOX_NOTREADY


def test_changes_behind_pycris_back_show_within_a_second(shim: NerdctlShim, kube: Kube) -> None:
    pod = kube.pod("metrics-server-6d94bc8694-tq6kz")
    stopped = kube.container(pod, "metrics-server", ["sleep", "3600"])
    removed = kube.container(pod, "metrics-server-nanny", ["sleep", "3600"])
    killed = kube.container(pod, "addon-resizer", ["sleep", "3600"])
    fresh(shim)
    assert {kube.states()[c] for c in (stopped, removed, killed)} == {cri.CONTAINER_RUNNING}

    nerdctl("stop", "-t", "0", stopped)
    latencies = [
        poll("nerdctl stop", lambda: kube.states()[stopped] == cri.CONTAINER_EXITED),
    ]
    nerdctl("rm", "-f", removed)
    latencies.append(poll("nerdctl rm -f", lambda: removed not in kube.states()))
    runc = RuncState.load(shim.options.runc_root, shim.options.namespace, killed)
    assert runc is not None
    os.kill(runc.init_pid, signal.SIGKILL)
    latencies.append(poll("kill -9", lambda: kube.states()[killed] == cri.CONTAINER_EXITED))
    print(f"behind pycri's back: {[round(s * 1000, 1) for s in latencies]} ms")
    assert shim.view.fresh


def test_a_killed_event_stream_is_replaced_and_the_view_rebuilt(
    shim: NerdctlShim, kube: Kube
) -> None:
    pod = kube.pod("etcd-control-plane-7c9b5d")
    survivor = kube.container(pod, "etcd", ["sleep", "3600"])
    victim = kube.container(pod, "etcd-backup", ["sleep", "3600"])
    fresh(shim)
    generation, rebuilds = shim.view.generation, shim.view.rebuilds
    pid = shim.view.stream_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # behind pycri's back while the stream is down or coming back: not lost either way
    nerdctl("rm", "-f", victim)
    poll("the removal", lambda: victim not in kube.states())
    poll("a new stream", lambda: shim.view.generation > generation and shim.view.fresh, 120)
    assert shim.view.rebuilds > rebuilds
    assert shim.view.stream_pid not in (None, pid)
    assert kube.states()[survivor] == cri.CONTAINER_RUNNING
    assert victim not in kube.states()
    before = processes(shim, "ListContainers")
    kube.states()
    assert processes(shim, "ListContainers") == before


def test_kill9_of_the_server_loses_nothing(tmp_path: Path, nerdctl_ready: None) -> None:
    server = ServerProcess("nerdctl", tmp_path)
    run_id = str(uuid.uuid4())
    selector = {"pycri.view-test": run_id}
    client = server.start()
    try:
        config = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(
                name="coredns-7db6d8ff4d-x2k9p", namespace="kube-system", uid=run_id
            ),
            labels=selector,
            log_directory=str(tmp_path / "logs"),
            linux=cri.LinuxPodSandboxConfig(),
        )
        pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        ids = {}
        for name, start in (("coredns", True), ("coredns-sidecar", False), ("reloader", True)):
            request = cri.CreateContainerRequest(
                pod_sandbox_id=pod_id,
                sandbox_config=config,
                config=cri.ContainerConfig(
                    metadata=cri.ContainerMetadata(name=name),
                    image=cri.ImageSpec(image=BUSYBOX),
                    command=["sleep", "3600"],
                    labels=selector,
                    linux=cri.LinuxContainerConfig(),
                ),
            )
            ids[name] = client.create_container(request).container_id
            if start:
                client.start_container(cri.StartContainerRequest(container_id=ids[name]))
        server.kill9()
        client.close()
        nerdctl("stop", "-t", "0", ids["reloader"])  # while pycri is down

        client = server.start()
        wanted = {
            ids["coredns"]: cri.CONTAINER_RUNNING,
            ids["coredns-sidecar"]: cri.CONTAINER_CREATED,
            ids["reloader"]: cri.CONTAINER_EXITED,
        }

        def listed() -> dict[str, int]:
            request = cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector=selector))
            return {c.id: c.state for c in client.list_containers(request).containers}

        assert listed() == wanted  # at once: from ps or from the rebuilt view

        def view_fresh() -> bool:
            info = client.status(cri.StatusRequest(verbose=True)).info
            return bool(json.loads(info["containerView"])["fresh"])

        poll("the view after a restart", view_fresh, 120)
        assert listed() == wanted
        pods = client.list_pod_sandbox(
            cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
        ).items
        assert [(p.id, p.state) for p in pods] == [(pod_id, cri.SANDBOX_READY)]
        counts = json.loads(client.status(cri.StatusRequest(verbose=True)).info["nerdctlProcesses"])
        before = counts.get("ListContainers", {}).get("processes", 0)
        listed()
        counts = json.loads(client.status(cri.StatusRequest(verbose=True)).info["nerdctlProcesses"])
        assert counts["ListContainers"]["processes"] == before
    finally:
        ours = cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
        for pod in client.list_pod_sandbox(ours).items:
            client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
        client.close()
        server.stop()
        left = nerdctl("ps", "-a", "-q", "--filter", f"label=pycri.view-test={run_id}")
        assert not left.split(), f"left in containerd: {left}"


def test_container_events_come_from_the_stream_once_each(
    shim: NerdctlShim, runtime: CRIRuntime, kube: Kube
) -> None:
    """GetContainerEvents: core reports the RPCs' own changes, the stream what nobody
    asked for (an exit, a removal behind pycri's back); nothing twice."""
    fresh(shim)
    subscription = runtime.events.subscribe()
    try:
        pod = kube.pod("node-local-dns-8kq2w")
        own = kube.container(pod, "node-cache", ["sleep", "3600"])
        exits = kube.container(pod, "init-iptables", ["sh", "-c", "sleep 1"])
        behind = kube.container(pod, "dns-autoscaler", ["sleep", "3600"])
        kube.runtime.stop_container(cri.StopContainerRequest(container_id=own))
        poll("the exit", lambda: kube.states()[exits] == cri.CONTAINER_EXITED)
        nerdctl("rm", "-f", behind)
        poll("the removal", lambda: behind not in kube.states())
        seen: list[tuple[str, int]] = []
        deadline = time.monotonic() + POLL
        settled = 0.0  # once the last event is in: half a second more for a duplicate
        for event in subscription.events(poll=0.05):
            if event is not None:
                seen.append((event.container_id, event.container_event_type))
            now = time.monotonic()
            if not settled and (behind, cri.CONTAINER_DELETED_EVENT) in seen:
                settled = now + 0.5
            if (settled and now > settled) or now > deadline:
                break
    finally:
        subscription.close()
    for container_id in (own, exits, behind):
        ours = [kind for cid, kind in seen if cid == container_id]
        assert ours.count(cri.CONTAINER_CREATED_EVENT) == 1, ours
        assert ours.count(cri.CONTAINER_STARTED_EVENT) == 1, ours
    assert [k for c, k in seen if c == own].count(cri.CONTAINER_STOPPED_EVENT) == 1
    assert (exits, cri.CONTAINER_STOPPED_EVENT) in seen  # nobody asked: from the stream
    assert (behind, cri.CONTAINER_STOPPED_EVENT) in seen
    assert (behind, cri.CONTAINER_DELETED_EVENT) in seen


# -- statuses from the view: ContainerStatus and PodSandboxStatus (memo.py) ------------------


def status_of(kube: Kube, container_id: str) -> int:
    request = cri.ContainerStatusRequest(container_id=container_id)
    return kube.runtime.container_status(request).status.state


def pod_status_of(kube: Kube, pod_id: str) -> int:
    request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
    return kube.runtime.pod_sandbox_status(request).status.state


def test_warm_statuses_spend_no_process(shim: NerdctlShim, kube: Kube) -> None:
    pod = kube.pod("kube-controller-manager-control-plane-node-1a2b3c4d5e6f")
    running = kube.container(pod, "kube-controller-manager", ["sleep", "3600"])
    created = kube.container(pod, "kube-controller-manager-init", ["true"], start=False)
    fresh(shim)
    # the first of each inspects (and reads the stored spec's user of a container not running)
    assert status_of(kube, running) == cri.CONTAINER_RUNNING
    assert status_of(kube, created) == cri.CONTAINER_CREATED
    assert pod_status_of(kube, pod[0]) == cri.SANDBOX_READY
    before = {rpc: processes(shim, rpc) for rpc in ("ContainerStatus", "PodSandboxStatus")}
    for _ in range(20):
        assert status_of(kube, running) == cri.CONTAINER_RUNNING
        assert status_of(kube, created) == cri.CONTAINER_CREATED
        assert pod_status_of(kube, pod[0]) == cri.SANDBOX_READY
        verbose = cri.ContainerStatusRequest(container_id=running, verbose=True)
        assert json.loads(kube.runtime.container_status(verbose).info["info"])["pid"] > 0
    for rpc, count in before.items():
        assert processes(shim, rpc) == count, f"{rpc} started a process"


def test_changes_behind_pycris_back_show_in_the_next_status(shim: NerdctlShim, kube: Kube) -> None:
    """The exit or delete event drops the kept inspect: the status after it is right."""
    pod = kube.pod("kube-scheduler-control-plane-node-7f8e9d0c1b2a")
    stopped = kube.container(pod, "kube-scheduler", ["sleep", "3600"])
    killed = kube.container(pod, "kube-scheduler-sidecar", ["sleep", "3600"])
    removed = kube.container(pod, "kube-scheduler-metrics", ["sleep", "3600"])
    fresh(shim)
    for container_id in (stopped, killed, removed):
        assert status_of(kube, container_id) == cri.CONTAINER_RUNNING  # now kept
    latencies = []
    nerdctl("stop", "-t", "0", stopped)
    latencies.append(poll("nerdctl stop", lambda: status_of(kube, stopped) == cri.CONTAINER_EXITED))
    nerdctl("kill", killed)
    latencies.append(poll("nerdctl kill", lambda: status_of(kube, killed) == cri.CONTAINER_EXITED))
    nerdctl("rm", "-f", removed)

    def gone() -> bool:
        try:
            status_of(kube, removed)
        except CRIError as err:
            return err.code == grpc.StatusCode.NOT_FOUND  # another code: polled until it fails
        return False

    latencies.append(poll("nerdctl rm -f", gone))
    print(f"statuses behind pycri's back: {[round(s * 1000, 1) for s in latencies]} ms")
    # what the lists say is what the statuses say (no kept inspect outlived its event)
    states = kube.states()
    assert states[stopped] == status_of(kube, stopped) == cri.CONTAINER_EXITED
    assert states[killed] == status_of(kube, killed) == cri.CONTAINER_EXITED
    assert shim.view.fresh


def test_a_killed_event_stream_never_leaves_a_stale_status(shim: NerdctlShim, kube: Kube) -> None:
    pod = kube.pod("kube-apiserver-control-plane-node-0f1e2d3c4b5a")
    survivor = kube.container(pod, "kube-apiserver", ["sleep", "3600"])
    victim = kube.container(pod, "kube-apiserver-audit", ["sleep", "3600"])
    fresh(shim)
    for container_id in (survivor, victim):
        assert status_of(kube, container_id) == cri.CONTAINER_RUNNING  # now kept
    assert pod_status_of(kube, pod[0]) == cri.SANDBOX_READY
    generation = shim.view.generation
    pid = shim.view.stream_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    poll("the view notices", lambda: not shim.view.fresh or shim.view.generation > generation)
    assert len(shim.view.inspected) == 0  # nothing kept survives a broken stream
    nerdctl("stop", "-t", "0", victim)  # no event reaches the view for this one
    assert status_of(kube, victim) == cri.CONTAINER_EXITED  # at once: inspected again
    poll("a new stream", lambda: shim.view.generation > generation and shim.view.fresh, 120)
    assert status_of(kube, victim) == cri.CONTAINER_EXITED
    assert status_of(kube, survivor) == cri.CONTAINER_RUNNING
    before = processes(shim, "ContainerStatus")
    assert status_of(kube, survivor) == cri.CONTAINER_RUNNING  # warm again
    assert processes(shim, "ContainerStatus") == before
