"""Pods as Kubernetes API objects (``get -o yaml|json``): metadata, spec and computed status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pycri.kubelet.cli.timefmt import rfc3339
from pycri.kubelet.model.spec import Deployment, Pod
from pycri.kubelet.sync.kubelet import PodInfo
from pycri.kubelet.sync.status import ContainerState, ContainerStatus, PodStatus

__all__ = ["deployment_object", "list_object", "pod_object", "qos_class"]


def qos_class(pod: Pod | None) -> str:
    """Guaranteed, Burstable or BestEffort, by the API server's rules."""
    if pod is None:
        return "BestEffort"
    containers = pod.spec.all_containers()
    amounts = [
        (
            c.resources.cpu_request_millis,
            c.resources.cpu_limit_millis,
            c.resources.memory_request_bytes,
            c.resources.memory_limit_bytes,
        )
        for c in containers
    ]
    if all(all(v is None for v in a) for a in amounts):
        return "BestEffort"
    guaranteed = all(
        a[1] is not None and a[3] is not None and a[0] == a[1] and a[2] == a[3] for a in amounts
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _state(state: ContainerState | None, runtime: str) -> dict[str, Any]:
    if state is None:
        return {}
    if state.state == "running":
        return {"running": {"startedAt": rfc3339(state.started_at)}}
    if state.state == "waiting":
        waiting = {"reason": state.reason}
        if state.message:
            waiting["message"] = state.message
        return {"waiting": waiting}
    terminated: dict[str, Any] = {
        "exitCode": state.exit_code,
        "reason": state.reason,
        "startedAt": rfc3339(state.started_at),
        "finishedAt": rfc3339(state.finished_at),
        "containerID": f"{runtime}://{state.container_id}" if state.container_id else None,
    }
    if state.message:
        terminated["message"] = state.message
    return {"terminated": terminated}


def _container_status(status: ContainerStatus, runtime: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": status.name,
        "state": _state(status.state, runtime),
        "lastState": _state(status.last_state, runtime),
        "ready": status.ready,
        "restartCount": status.restart_count,
        "image": status.image,
        "imageID": status.image_id,
    }
    if status.container_id:
        out["containerID"] = f"{runtime}://{status.container_id}"
    if not status.init:
        out["started"] = bool(status.started)
    return out


def status_object(status: PodStatus, runtime: str, qos: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "phase": status.phase,
        "conditions": [
            {
                "type": c.type,
                "status": "True" if c.status else "False",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(c.last_transition),
                **({"reason": c.reason} if c.reason else {}),
                **({"message": c.message} if c.message else {}),
            }
            for c in status.conditions
        ],
        "hostIP": status.host_ip,
        "podIP": status.pod_ip,
        "podIPs": [{"ip": status.pod_ip}] if status.pod_ip else [],
        "startTime": rfc3339(status.start_time),
        "qosClass": qos,
    }
    if status.reason:
        out["reason"] = status.reason
    if status.init_container_statuses:
        out["initContainerStatuses"] = [
            _container_status(s, runtime) for s in status.init_container_statuses
        ]
    out["containerStatuses"] = [_container_status(s, runtime) for s in status.container_statuses]
    return out


def pod_object(info: PodInfo, *, runtime: str, node: str) -> dict[str, Any]:
    pod = info.pod
    metadata: dict[str, Any] = {"name": info.name, "namespace": info.namespace, "uid": info.uid}
    if info.status.start_time:
        metadata["creationTimestamp"] = rfc3339(info.status.start_time)
    if pod is not None:
        if pod.labels:
            metadata["labels"] = dict(pod.labels)
        annotations = dict(pod.annotations)
        if pod.source:
            annotations["kubernetes.io/config.source"] = "file"
            annotations["kubelet.pycri.io/manifest"] = pod.source
        if annotations:
            metadata["annotations"] = annotations
        if pod.owner:
            metadata["ownerReferences"] = [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": pod.owner}
            ]
        spec = dict(pod.raw.get("spec") or {})
    else:
        metadata["deletionTimestamp"] = rfc3339(info.status.start_time)
        spec = {}
    spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": status_object(info.status, runtime, qos_class(pod)),
    }


def deployment_object(deployment: Deployment, pods: Sequence[PodInfo]) -> dict[str, Any]:
    mine = [p for p in pods if p.pod is not None and p.pod.owner == deployment.name]
    ready = sum(1 for p in mine if p.status.ready)
    document = dict(deployment.raw)
    document["status"] = {
        "replicas": len(mine),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "updatedReplicas": len(mine),
    }
    return document


def list_object(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
