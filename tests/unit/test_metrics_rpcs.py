"""The metrics RPCs through CRIRuntime: the stream form, the router, shims without metrics."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.router import HandlerRouter
from pycri.core.rpcs import base as rpc_base
from pycri.core.runtime import CRIRuntime
from pycri.errors import UnimplementedError
from pycri.shim import Shim
from pycri_shims.fake import FakeShim


class NoMetrics(FakeShim):
    """A shim that, like a third party's, leaves the metrics to the Shim defaults."""

    metric_descriptors = Shim.metric_descriptors
    pod_sandbox_metrics = Shim.pod_sandbox_metrics


def run_pod(runtime: CRIRuntime, name: str, handler: str = "") -> str:
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace="ns", uid=f"u-{name}")
    )
    request = cri.RunPodSandboxRequest(config=config, runtime_handler=handler)
    return runtime.run_pod_sandbox(request).pod_sandbox_id


def test_a_shim_without_metrics_answers_unimplemented() -> None:
    runtime = CRIRuntime(NoMetrics())
    with pytest.raises(UnimplementedError, match="does not report metrics") as info:
        runtime.list_metric_descriptors(cri.ListMetricDescriptorsRequest())
    assert info.value.rpc == "ListMetricDescriptors"
    with pytest.raises(UnimplementedError):
        runtime.list_pod_sandbox_metrics(cri.ListPodSandboxMetricsRequest())
    with pytest.raises(UnimplementedError):
        list(runtime.stream_pod_sandbox_metrics(cri.StreamPodSandboxMetricsRequest(), lambda: True))


def test_stream_pod_sandbox_metrics_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc_base, "STREAM_BATCH", 2)
    runtime = CRIRuntime(FakeShim())
    pod_ids = {run_pod(runtime, f"m{i}") for i in range(3)}
    stopped = run_pod(runtime, "stopped")
    runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=stopped))
    batches = list(
        runtime.stream_pod_sandbox_metrics(cri.StreamPodSandboxMetricsRequest(), lambda: True)
    )
    assert [len(b.pod_sandbox_metrics) for b in batches] == [2, 1]
    # only ready pods: a stopped pod has no figures
    assert {m.pod_sandbox_id for b in batches for m in b.pod_sandbox_metrics} == pod_ids
    listed = runtime.list_pod_sandbox_metrics(cri.ListPodSandboxMetricsRequest()).pod_metrics
    assert {m.pod_sandbox_id for m in listed} == pod_ids


def test_router_merges_its_shims_metrics() -> None:
    shims: dict[str, FakeShim] = {"old": FakeShim(), "new": FakeShim(), "plain": NoMetrics()}
    runtime = CRIRuntime(HandlerRouter(shims, default="old"))
    pods = {run_pod(runtime, "a"), run_pod(runtime, "b", "new")}
    run_pod(runtime, "c", "plain")
    names = [
        d.name
        for d in runtime.list_metric_descriptors(cri.ListMetricDescriptorsRequest()).descriptors
    ]
    assert len(names) == len(set(names))
    listed = runtime.list_pod_sandbox_metrics(cri.ListPodSandboxMetricsRequest()).pod_metrics
    assert {m.pod_sandbox_id for m in listed} == pods
    only_plain = CRIRuntime(HandlerRouter({"plain": NoMetrics()}, default="plain"))
    with pytest.raises(UnimplementedError, match="none of this server's shims"):
        only_plain.list_metric_descriptors(cri.ListMetricDescriptorsRequest())


def _container(runtime: CRIRuntime, pod_id: str, name: str) -> str:
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name),
        image=cri.ImageSpec(image="docker.io/library/busybox:latest"),
        command=["sleep", "60"],
    )
    created = runtime.create_container(
        cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=config)
    ).container_id
    runtime.start_container(cri.StartContainerRequest(container_id=created))
    return created


def test_stream_stats_in_batches_fetched_as_they_are_due(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each batch's stats are fetched when it is due; a client gone stops the fetching."""
    monkeypatch.setattr(rpc_base, "STREAM_BATCH", 2)
    shim = FakeShim()
    runtime = CRIRuntime(shim)
    pod_ids = [run_pod(runtime, f"coredns-5d78c9869d-{i}") for i in range(3)]
    ids = {_container(runtime, pod_ids[0], f"c{i}") for i in range(5)}
    fetched: list[int] = []
    fetch = shim.container_stats

    def counting(container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        fetched.append(len(container_ids))
        return fetch(container_ids)

    monkeypatch.setattr(shim, "container_stats", counting)

    stream = runtime.stream_container_stats(cri.StreamContainerStatsRequest(), lambda: True)
    first = next(stream)
    assert len(first.container_stats) == 2
    assert fetched == [2]
    rest = [s.attributes.id for b in stream for s in b.container_stats]
    assert fetched == [2, 2, 1]
    assert {s.attributes.id for s in first.container_stats} | set(rest) == ids

    fetched.clear()
    active = iter([True, False])
    gone = list(
        runtime.stream_container_stats(cri.StreamContainerStatsRequest(), lambda: next(active))
    )
    assert [len(b.container_stats) for b in gone] == [2]
    assert fetched == [2]

    pods = runtime.stream_pod_sandbox_stats(cri.StreamPodSandboxStatsRequest(), lambda: True)
    assert [len(b.pod_sandbox_stats) for b in pods] == [2, 1]


def test_stream_stats_leave_out_a_batch_that_vanished(monkeypatch: pytest.MonkeyPatch) -> None:
    """Containers removed between the listing and their batch: no empty message."""
    monkeypatch.setattr(rpc_base, "STREAM_BATCH", 1)
    shim = FakeShim()
    runtime = CRIRuntime(shim)
    pod_id = run_pod(runtime, "kube-proxy-x7k2p")
    kept = _container(runtime, pod_id, "kept")
    gone = _container(runtime, pod_id, "gone")
    fetch = shim.container_stats
    monkeypatch.setattr(
        shim, "container_stats", lambda i: [s for s in fetch(i) if s.attributes.id != gone]
    )
    batches = list(runtime.stream_container_stats(cri.StreamContainerStatsRequest(), lambda: True))
    assert [[s.attributes.id for s in b.container_stats] for b in batches] == [[kept]]
