"""The conformance tests of the pod sandbox RPCs: lifecycle, names, ids, filters."""

from __future__ import annotations

import uuid

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
)
from pycri.testing.conformance.base import ConformanceBase
from pycri.testing.conformance.pods import PodFactory

__all__ = ["SandboxConformance"]


class SandboxConformance(ConformanceBase):
    """Pod sandboxes."""

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
