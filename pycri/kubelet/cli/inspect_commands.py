"""Read-only commands: ``get pods|deployments`` and ``describe pod``.

The status is computed from the runtime and the manifests by whichever
process asks, so these commands show the same as the daemon would
(probe results and waiting reasons come from the daemon's state files).
"""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from pycri.kubelet.cli.apiobject import deployment_object, list_object, pod_object
from pycri.kubelet.cli.describe import describe_pod
from pycri.kubelet.cli.session import KubectlSession, KubeletCLIError, node_options, warn
from pycri.kubelet.cli.tables import deployment_rows, pod_rows, render
from pycri.kubelet.cli.workload_commands import kind_name
from pycri.kubelet.sync.kubelet import PodInfo

__all__ = ["COMMANDS"]

_RESOURCES = {
    "pod": "pods",
    "pods": "pods",
    "po": "pods",
    "deployment": "deployments",
    "deployments": "deployments",
    "deploy": "deployments",
    "deployment.apps": "deployments",
}


def _selector(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="-l")
        pairs[key.strip()] = value.strip()
    return pairs


def _matches(info: PodInfo, selector: dict[str, str]) -> bool:
    labels = info.pod.labels if info.pod else {}
    return all(labels.get(k) == v for k, v in selector.items())


def _emit(document: dict[str, Any], output: str) -> None:
    if output == "json":
        click.echo(json.dumps(document, indent=4))
    else:
        click.echo(yaml.safe_dump(document, sort_keys=True, default_flow_style=False).rstrip())


@click.command("get")
@click.argument("resource")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default="", help="Label selector: key=value,...")
@click.option("-o", "--output", type=click.Choice(["", "wide", "yaml", "json", "name"]), default="")
@node_options
def get_command(
    session: KubectlSession,
    resource: str,
    names: tuple[str, ...],
    namespace: str,
    all_namespaces: bool,
    selector: str,
    output: str,
) -> None:
    """List pods or deployments: get pods [NAME...] [-o wide|yaml|json|name]."""
    kind = _RESOURCES.get(resource.lower())
    if kind is None:
        raise click.UsageError(f"unknown resource type {resource!r}: pods or deployments")
    kubelet = session.kubelet
    now = kubelet.clock.now()
    pods = kubelet.pods(None if all_namespaces else namespace)
    for error in kubelet.manifests.load().broken.values():
        warn(f"{error} (its pods are left as they are)")
    labels = _selector(selector)
    if kind == "deployments":
        desired = kubelet.manifests.load()
        deployments = [
            obj.deployment
            for _, obj in desired.objects
            if obj.deployment is not None
            and (all_namespaces or obj.namespace == namespace)
            and (not names or obj.name in names)
        ]
        missing = sorted(set(names) - {d.name for d in deployments})
        if output in ("yaml", "json"):
            items = [deployment_object(d, pods) for d in deployments]
            _emit(items[0] if len(names) == 1 and items else list_object(items), output)
        elif output == "name":
            click.echo("\n".join(f"deployment.apps/{d.name}" for d in deployments))
        elif deployments:
            click.echo(render(deployment_rows(deployments, pods, now, namespaces=all_namespaces)))
        elif not missing:
            click.echo(f"No resources found in {namespace} namespace.", err=True)
        if missing:
            raise KubeletCLIError(f'deployments.apps "{missing[0]}" not found')
        return
    shown = [p for p in pods if (not names or p.name in names) and _matches(p, labels)]
    missing = sorted(set(names) - {p.name for p in shown})
    node = session.settings.node_name
    if output in ("yaml", "json"):
        runtime = session.runtime_name()
        items = [pod_object(p, runtime=runtime, node=node) for p in shown]
        _emit(items[0] if len(names) == 1 and items else list_object(items), output)
    elif output == "name":
        click.echo("\n".join(f"pod/{p.name}" for p in shown))
    elif shown:
        rows = pod_rows(shown, now, wide=output == "wide", namespaces=all_namespaces, node=node)
        click.echo(render(rows))
    elif not missing:
        where = "any" if all_namespaces else f"{namespace}"
        click.echo(f"No resources found in {where} namespace.", err=True)
    if missing:
        raise KubeletCLIError(f'pods "{missing[0]}" not found')


@click.command("describe")
@click.argument("resource")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@node_options
def describe_command(
    session: KubectlSession, resource: str, names: tuple[str, ...], namespace: str
) -> None:
    """Show a pod in detail: describe pod NAME (events included)."""
    kind, name = kind_name(resource, "")
    targets = list(names)
    if kind:
        targets.insert(0, name)
    elif _RESOURCES.get(resource.lower()) != "pods":
        raise click.UsageError("describe supports pods: describe pod NAME")
    kubelet = session.kubelet
    pods = kubelet.pods(namespace)
    chosen = [p for p in pods if not targets or p.name in targets]
    missing = sorted(set(targets) - {p.name for p in chosen})
    runtime = session.runtime_name()
    now = kubelet.clock.now()
    texts = [
        describe_pod(
            p,
            runtime=runtime,
            node=session.settings.node_name,
            host_ip=kubelet.context.host_ip,
            now=now,
        )
        for p in chosen
    ]
    if texts:
        click.echo("\n\n".join(texts))
    if missing:
        raise KubeletCLIError(f'pods "{missing[0]}" not found')


COMMANDS: list[click.Command] = [get_command, describe_command]
