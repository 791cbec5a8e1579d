"""No pod leaves network state behind on the nerdctl shim (nat rules, IP allocations).

nerdctl 1.7.7's postStop hook runs CNI DEL without a netns, so the bridge
plugin never removes a pod's masquerade rule (shims/nerdctl/cni.py). These
tests count, for the pods they create and no others (other runs share the
host), the nat rules naming each pod and host-local's files holding its
address: after StopPodSandbox, with the pause killed behind the shim's back,
and across a kill -9 of pycri-server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.errors import CRIError
from pycri.testing.conformance import wait_for
from pycri.testing.server_process import ServerProcess
from pycri_shims.nerdctl.shim import NerdctlShim
from pycri_shims.nerdctl.testing import (
    Created,
    TrackingShim,
    created_fixture,  # noqa: F401 - a shared fixture
    nerdctl,
    ready_fixture,  # noqa: F401 - a shared fixture
)

pytestmark = pytest.mark.real

PODS = 20


def pod_config(root: Path, host_port: int = 0) -> cri.PodSandboxConfig:
    uid = uuid.uuid4().hex
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=f"net-{uid[:8]}", namespace="cni-leak", uid=uid),
        hostname=f"net-{uid[:8]}",
        log_directory=str(root / uid),
        labels={"pycri.test": "network"},
    )
    if host_port:
        config.port_mappings.add(
            protocol=cri.TCP, container_port=80, host_port=host_port, host_ip="127.0.0.1"
        )
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def kill_pause(pod_id: str) -> None:
    """SIGKILL the pod's pause process behind the shim's back and wait for its exit."""
    state = json.loads(nerdctl("container", "inspect", pod_id))[0]["State"]
    os.kill(int(state["Pid"]), signal.SIGKILL)

    def exited() -> bool:
        return not json.loads(nerdctl("container", "inspect", pod_id))[0]["State"]["Running"]

    wait_for(exited, 30, "the pause process to exit")


def network_state(*pod_ids: str) -> dict[str, set[str]]:
    """The nat rules and IP allocations naming these pods.

    Not the containers, nor libcni's result cache, which nerdctl's hook
    deletes on ``rm`` (``Created.left`` checks both at the end).
    """
    only = Created()
    for pod_id in pod_ids:
        only.add(pod_id)
    return {k: v for k, v in only.left().items() if k in ("ip_allocations", "nat_rules")}


def test_twenty_pods_leave_no_rules_or_addresses(created: Created, tmp_path: Path) -> None:
    """Stopped normally, pause killed then stopped, pause killed then removed: nothing stays."""
    shim = TrackingShim(created)
    runtime = CRIRuntime(shim)
    try:
        pods: list[str] = []
        for i in range(PODS):
            # a few with a host port, so portmap's DNAT rules are counted too
            config = pod_config(tmp_path, host_port=free_port() if i % 5 == 0 else 0)
            request = cri.RunPodSandboxRequest(config=config)
            pods.append(runtime.run_pod_sandbox(request).pod_sandbox_id)
        # the count sees what the pods hold, so an empty count below means something
        held = network_state(*pods)
        assert len(held.get("ip_allocations", ())) == PODS, held
        assert len(held.get("nat_rules", ())) >= 3 * PODS, held

        stopped, killed_stopped, killed_removed = pods[:7], pods[7:14], pods[14:]
        for pod_id in killed_stopped + killed_removed:
            kill_pause(pod_id)
        for pod_id in stopped + killed_stopped:
            runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            # StopPodSandbox gives the network back (CRI), not only RemovePodSandbox
            assert network_state(pod_id) == {}, f"pod {pod_id[:13]} after StopPodSandbox"
        for pod_id in pods:
            runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        assert network_state(*pods) == {}
        assert created.left() == {}
    finally:
        shim.close()


def test_kill9_of_the_server_between_run_and_remove(created: Created, tmp_path: Path) -> None:
    """Nothing about a pod's network lives only in pycri-server's memory."""
    server = ServerProcess("nerdctl", tmp_path)
    client = server.start()
    try:
        pods = []
        for _ in range(3):
            request = cri.RunPodSandboxRequest(config=pod_config(tmp_path))
            pods.append(created.add(client.run_pod_sandbox(request).pod_sandbox_id))
        assert len(network_state(*pods).get("ip_allocations", ())) == 3
        client.close()
        server.kill9()
        kill_pause(pods[1])
        client = server.start()
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pods[0]))
        assert network_state(pods[0]) == {}
        for pod_id in pods:
            client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        assert network_state(*pods) == {}
    finally:
        client.close()
        server.stop()


def test_the_shim_sweeps_what_removed_pods_left_at_start(created: Created, tmp_path: Path) -> None:
    """Pods removed behind its back (or before the cleanup existed) leak rules: swept at start."""
    shim = TrackingShim(created)
    runtime = CRIRuntime(shim)
    try:
        pods = [
            runtime.run_pod_sandbox(
                cri.RunPodSandboxRequest(config=pod_config(tmp_path))
            ).pod_sandbox_id
            for _ in range(2)
        ]
        kept = runtime.run_pod_sandbox(
            cri.RunPodSandboxRequest(config=pod_config(tmp_path))
        ).pod_sandbox_id
        nerdctl("rm", "-f", *pods)  # nerdctl's own postStop DEL leaves the masquerade rules
        assert network_state(*pods).get("nat_rules"), "nerdctl removed its rules after all?"
    finally:
        shim.close()
    restarted = NerdctlShim()  # its start-up sweep runs in the background
    try:
        wait_for(lambda: network_state(*pods) == {}, 60, "the sweep of the removed pods")
        assert network_state(kept).get("nat_rules"), "the running pod's rules went too"
        CRIRuntime(restarted).remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=kept))
    finally:
        restarted.close()
    assert network_state(*pods, kept) == {}


def test_a_sandbox_failing_to_start_leaves_no_rules(created: Created, tmp_path: Path) -> None:
    """nerdctl set up the network, then runc failed: the shim removes the pod and its rule."""
    shim = TrackingShim(created)
    runtime = CRIRuntime(shim)
    before = set(created.ids)
    try:
        config = pod_config(tmp_path)
        config.linux.sysctls["net.ipv4.ip_forward"] = "not-a-number"  # runc fails to write it
        with pytest.raises(CRIError, match="ip_forward"):
            runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=config))
        failed = created.ids - before
        assert len(failed) == 1, "the failed sandbox was not seen (TrackingShim)"
        assert network_state(*failed) == {}
    finally:
        shim.close()
