"""The conformance tests of the stats RPCs, listed and streamed, while containers come and go."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.rpcs import base as rpc_base
from pycri.errors import (
    CRIError,
    InvalidArgumentError,
)
from pycri.shim import Shim
from pycri.testing.conformance.base import ConformanceBase
from pycri.testing.conformance.pods import PodFactory

__all__ = ["StatsConformance"]


class StatsConformance(ConformanceBase):
    """Container and pod sandbox stats."""

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
