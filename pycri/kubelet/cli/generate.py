"""The manifests ``run`` and ``create deployment`` write, as kubectl generates them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["deployment_document", "pod_document"]


def _container(
    name: str,
    image: str,
    *,
    command: Sequence[str] = (),
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    pull_policy: str = "",
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image}
    if command:
        container["command"] = list(command)
    if args:
        container["args"] = list(args)
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if port:
        container["ports"] = [{"containerPort": port}]
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    return container


def pod_document(
    name: str,
    image: str,
    *,
    namespace: str = "default",
    command: Sequence[str] = (),
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    port: int | None = None,
    restart: str = "Always",
    pull_policy: str = "",
) -> dict[str, Any]:
    """``kubectl run NAME --image IMG``: label ``run=NAME``, one container named NAME."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {"run": name})},
        "spec": {
            "containers": [
                _container(
                    name,
                    image,
                    command=command,
                    args=args,
                    env=env,
                    port=port,
                    pull_policy=pull_policy,
                )
            ],
            "restartPolicy": restart,
        },
    }


def deployment_document(
    name: str,
    image: str,
    *,
    namespace: str = "default",
    replicas: int = 1,
    command: Sequence[str] = (),
    port: int | None = None,
    pull_policy: str = "",
) -> dict[str, Any]:
    """``kubectl create deployment NAME --image IMG``: label ``app=NAME``."""
    container_name = image.rsplit("/", 1)[-1].split(":")[0].split("@")[0] or name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        _container(
                            container_name,
                            image,
                            command=command,
                            port=port,
                            pull_policy=pull_policy,
                        )
                    ]
                },
            },
        },
    }
