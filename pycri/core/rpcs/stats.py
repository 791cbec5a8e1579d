"""The stats RPCs: ContainerStats, PodSandboxStats, their List* and Stream* forms."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pycri.api import api_pb2 as cri
from pycri.core import filters
from pycri.core.rpcs.base import RuntimeBase, batches, rpc
from pycri.core.validation import validate_filter
from pycri.errors import NotFoundError

__all__ = ["StatsRPCs"]


class StatsRPCs(RuntimeBase):
    """Resource usage of containers and pod sandboxes."""

    @rpc("ContainerStats")
    def container_stats(self, request: cri.ContainerStatsRequest) -> cri.ContainerStatsResponse:
        container_id = self._resolve_container(request.container_id)
        stats = self.shim.container_stats([container_id])
        if not stats:
            raise NotFoundError(f"container {container_id[:13]} not found, or it has no stats")
        return cri.ContainerStatsResponse(stats=stats[0])

    @rpc("ListContainerStats")
    def list_container_stats(
        self, request: cri.ListContainerStatsRequest
    ) -> cri.ListContainerStatsResponse:
        ids = self._stats_container_ids(request)
        return cri.ListContainerStatsResponse(stats=self.shim.container_stats(ids) if ids else [])

    def _stats_container_ids(
        self, request: cri.ListContainerStatsRequest | cri.StreamContainerStatsRequest
    ) -> list[str]:
        f = request.filter if request.HasField("filter") else None
        validate_filter(f)
        hint = (
            cri.ContainerFilter(
                id=f.id, pod_sandbox_id=f.pod_sandbox_id, label_selector=f.label_selector
            )
            if f
            else None
        )
        return [c.id for c in filters.filter_containers(self.shim.list_containers(hint), hint)]

    @rpc("PodSandboxStats")
    def pod_sandbox_stats(self, request: cri.PodSandboxStatsRequest) -> cri.PodSandboxStatsResponse:
        pod_id = self._resolve_pod(request.pod_sandbox_id)
        stats = self.shim.pod_sandbox_stats([pod_id])
        if not stats:
            raise NotFoundError(f"pod sandbox {pod_id[:13]} not found, or it has no stats")
        return cri.PodSandboxStatsResponse(stats=stats[0])

    @rpc("ListPodSandboxStats")
    def list_pod_sandbox_stats(
        self, request: cri.ListPodSandboxStatsRequest
    ) -> cri.ListPodSandboxStatsResponse:
        ids = self._stats_pod_ids(request)
        return cri.ListPodSandboxStatsResponse(
            stats=self.shim.pod_sandbox_stats(ids) if ids else []
        )

    def _stats_pod_ids(
        self, request: cri.ListPodSandboxStatsRequest | cri.StreamPodSandboxStatsRequest
    ) -> list[str]:
        f = request.filter if request.HasField("filter") else None
        validate_filter(f)
        hint = cri.PodSandboxFilter(id=f.id, label_selector=f.label_selector) if f else None
        return [
            p.id for p in filters.filter_pod_sandboxes(self.shim.list_pod_sandboxes(hint), hint)
        ]

    @rpc("StreamContainerStats")
    def stream_container_stats(
        self, request: cri.StreamContainerStatsRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamContainerStatsResponse]:
        """ListContainerStats in batches: each batch's stats are fetched when it is due,
        so the first arrive early and a client that has gone stops the fetching."""
        for ids in batches(self._stats_container_ids(request)):
            if not is_active():
                return
            stats = self.shim.container_stats(ids)
            if stats:  # all of the batch may have gone meanwhile
                yield cri.StreamContainerStatsResponse(container_stats=stats)

    @rpc("StreamPodSandboxStats")
    def stream_pod_sandbox_stats(
        self, request: cri.StreamPodSandboxStatsRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamPodSandboxStatsResponse]:
        """ListPodSandboxStats in batches, fetched as StreamContainerStats' are."""
        for ids in batches(self._stats_pod_ids(request)):
            if not is_active():
                return
            stats = self.shim.pod_sandbox_stats(ids)
            if stats:
                yield cri.StreamPodSandboxStatsResponse(pod_sandbox_stats=stats)
