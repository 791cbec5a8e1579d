"""One pod lifecycle through any CRI endpoint, each RPC timed: shared by the engine benchmarks.

Each harness times the same seven RPCs through pycri and through its
reference (the Docker SDK, raw nerdctl, containerd's own CRI), under the
CRI names in :data:`STEPS`, so their tables line up step by step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient

__all__ = ["STEPS", "Record", "cri_lifecycle", "timed"]

STEPS = (
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
)

#: called with (step, seconds) once a step has finished
Record = Callable[[str, float], None]
T = TypeVar("T")


def timed(record: Record, step: str, call: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = call()
    record(step, time.perf_counter() - started)
    return result


def cri_lifecycle(
    client: CRIClient,
    pod: cri.PodSandboxConfig,
    container: cri.ContainerConfig,
    record: Record,
    *,
    stop_timeout: int,
    on_pod: Callable[[str], None] | None = None,
) -> str:
    """Run a pod with one container and take it all down again; the pod's id.

    ``on_pod`` hears the pod's id as soon as it exists (to clean up after
    a failure part-way).
    """
    pod_id = timed(
        record,
        "RunPodSandbox",
        lambda: client.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod)).pod_sandbox_id,
    )
    if on_pod is not None:
        on_pod(pod_id)
    request = cri.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container, sandbox_config=pod
    )
    container_id = timed(
        record, "CreateContainer", lambda: client.create_container(request).container_id
    )
    timed(
        record,
        "StartContainer",
        lambda: client.start_container(cri.StartContainerRequest(container_id=container_id)),
    )
    timed(
        record,
        "StopContainer",
        lambda: client.stop_container(
            cri.StopContainerRequest(container_id=container_id, timeout=stop_timeout)
        ),
    )
    timed(
        record,
        "RemoveContainer",
        lambda: client.remove_container(cri.RemoveContainerRequest(container_id=container_id)),
    )
    timed(
        record,
        "StopPodSandbox",
        lambda: client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id)),
    )
    timed(
        record,
        "RemovePodSandbox",
        lambda: client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id)),
    )
    return pod_id
