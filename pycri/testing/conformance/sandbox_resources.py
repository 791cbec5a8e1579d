"""The conformance tests of UpdatePodSandboxResources (in-place pod resize)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.sandbox_resources import PodResources, SandboxResources
from pycri.errors import (
    InvalidArgumentError,
    NotFoundError,
    UnimplementedError,
)
from pycri.shim import Shim
from pycri.testing.conformance.base import ConformanceBase
from pycri.testing.conformance.pods import PodFactory

__all__ = ["SandboxResourcesConformance"]


class SandboxResourcesConformance(ConformanceBase):
    """Pod sandbox resources, as the kubelet reports them after a resize."""

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
