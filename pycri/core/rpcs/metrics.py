"""The metrics RPCs: ListMetricDescriptors, ListPodSandboxMetrics, StreamPodSandboxMetrics.

The shims build the metrics with :mod:`pycri.core.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pycri.api import api_pb2 as cri
from pycri.core.rpcs.base import RuntimeBase, batches, rpc

__all__ = ["MetricsRPCs"]


class MetricsRPCs(RuntimeBase):
    """cAdvisor's metrics of every ready pod and its containers."""

    @rpc("ListMetricDescriptors")
    def list_metric_descriptors(
        self, request: cri.ListMetricDescriptorsRequest
    ) -> cri.ListMetricDescriptorsResponse:
        return cri.ListMetricDescriptorsResponse(descriptors=self.shim.metric_descriptors())

    @rpc("ListPodSandboxMetrics")
    def list_pod_sandbox_metrics(
        self, request: cri.ListPodSandboxMetricsRequest
    ) -> cri.ListPodSandboxMetricsResponse:
        return cri.ListPodSandboxMetricsResponse(pod_metrics=self.shim.pod_sandbox_metrics())

    @rpc("StreamPodSandboxMetrics")
    def stream_pod_sandbox_metrics(
        self, request: cri.StreamPodSandboxMetricsRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.StreamPodSandboxMetricsResponse]:
        for batch in batches(self.shim.pod_sandbox_metrics()):
            yield cri.StreamPodSandboxMetricsResponse(pod_sandbox_metrics=batch)
