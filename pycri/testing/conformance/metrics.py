"""The conformance tests of the metrics RPCs: the descriptors and a working pod's metrics."""

from __future__ import annotations

import time

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.testing.conformance.base import ConformanceBase
from pycri.testing.conformance.config import REQUIRED_METRICS
from pycri.testing.conformance.pods import PodFactory

__all__ = ["MetricsConformance"]


class MetricsConformance(ConformanceBase):
    """cAdvisor's metrics."""

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
