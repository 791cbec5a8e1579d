"""Commands that change the desired state: run, create deployment, apply, scale, delete.

They edit the manifest directory. When a daemon serves the same root it
picks the change up within a second (and carries out deletions); when
none does, the command takes the writer's lock and syncs itself.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from pycri.kubelet.cli.generate import deployment_document, pod_document
from pycri.kubelet.cli.session import KubectlSession, KubeletCLIError, node_options, warn
from pycri.kubelet.model.manifest import ManifestObject, load_documents, parse_documents
from pycri.kubelet.sync.kubelet import PodInfo
from pycri.kubelet.sync.manifestdir import SUFFIXES

__all__ = ["COMMANDS"]

_KINDS = {
    "pod": "Pod",
    "pods": "Pod",
    "po": "Pod",
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deploy": "Deployment",
    "deployment.apps": "Deployment",
}
_SETTLED = ("Succeeded", "Failed")


def kind_name(text: str, default_kind: str = "") -> tuple[str, str]:
    """``deployment/web`` or ``web`` -> (kind, name)."""
    kind, sep, name = text.partition("/")
    if not sep:
        return default_kind, text
    if kind.lower() not in _KINDS:
        raise click.BadParameter(f"unknown resource type {kind!r}: pod or deployment")
    return _KINDS[kind.lower()], name


def described(obj: ManifestObject) -> str:
    return f"pod/{obj.name}" if obj.kind == "Pod" else f"deployment.apps/{obj.name}"


def _settled(info: PodInfo) -> bool:
    return info.status.phase in _SETTLED or info.status.ready


def _started(info: PodInfo) -> bool:
    """Past the point one more sync would change: running, finished, or stuck waiting."""
    if info.status.phase != "Pending":
        return True
    waiting = [s.state.reason for s in info.status.container_statuses]
    return any(r in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull") for r in waiting)


def converge(session: KubectlSession, uids: set[str], *, wait: float, direct: bool) -> None:
    """Sync (when direct) until the pods started, or, with ``wait``, until they are ready."""
    kubelet = session.kubelet
    deadline = time.monotonic() + (wait or 30.0)
    done = _settled if wait else _started
    while True:
        if direct:
            kubelet.sync_once()
        pods = [p for p in kubelet.pods() if p.uid in uids]
        if all(done(p) for p in pods) and len(pods) == len(uids):
            return
        if time.monotonic() > deadline:
            if wait:
                late = ", ".join(sorted(p.name for p in pods if not done(p)))
                raise KubeletCLIError(f"timed out after {wait:g}s waiting for {late or 'pods'}")
            return
        if not direct and not wait:
            return
        time.sleep(0.5 if wait else 0.2)


def _publish(
    session: KubectlSession, objects: Sequence[ManifestObject], *, sync: bool, wait: float
) -> None:
    kubelet = session.kubelet
    for obj in objects:
        result = kubelet.manifests.put(obj)
        click.echo(f"{described(obj)} {result}")
    uids = {pod.uid for obj in objects for pod in obj.pods}
    direct = session.direct()
    if direct and not sync:
        return
    if direct:
        converge(session, uids, wait=wait, direct=True)
        if not wait:
            click.echo(
                f"(no pycri-kubelet daemon serves {session.settings.root_dir}: synced once; "
                "run `pycri-kubelet serve` to keep the pods running)",
                err=True,
            )
    elif wait:
        converge(session, uids, wait=wait, direct=False)


def _objects(session: KubectlSession, documents: list[Any], source: str) -> list[ManifestObject]:
    manifest = parse_documents(documents, source=source, node=session.settings.node_name)
    for warning in manifest.warnings:
        warn(warning)
    return list(manifest.objects)


def _read_files(paths: Sequence[str]) -> list[tuple[str, str]]:
    texts = []
    for name in paths:
        if name == "-":
            texts.append(("<stdin>", sys.stdin.read()))
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
            texts += [(str(p), p.read_text()) for p in files]
        else:
            texts.append((str(path), path.read_text()))
    return texts


_sync_option = click.option(
    "--sync/--no-sync",
    default=True,
    help="Without a daemon: sync the pods now (default) or only write the manifest.",
)
_wait_option = click.option(
    "--wait",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Wait up to SECONDS for the pods to be ready (or to finish).",
)
_namespace_option = click.option("-n", "--namespace", default="default", show_default=True)


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("name")
@click.argument("args", nargs=-1)
@click.option("--image", required=True, help="Container image.")
@click.option("--env", multiple=True, metavar="KEY=VALUE", help="Environment variable.")
@click.option(
    "--labels", "-l", default="", metavar="k=v,...", help="Pod labels (default run=NAME)."
)
@click.option("--port", type=int, default=None, help="Container port.")
@click.option(
    "--restart",
    type=click.Choice(["Always", "OnFailure", "Never"]),
    default="Always",
    show_default=True,
)
@click.option(
    "--image-pull-policy",
    type=click.Choice(["", "Always", "IfNotPresent", "Never"]),
    default="",
    help="Default: Always for :latest, else IfNotPresent.",
)
@click.option("--command", "as_command", is_flag=True, help="ARGS are the command, not args.")
@click.option("--dry-run", type=click.Choice(["none", "client"]), default="none")
@click.option("-o", "--output", type=click.Choice(["", "yaml", "json"]), default="")
@_namespace_option
@_sync_option
@_wait_option
@node_options
def run_command(
    session: KubectlSession,
    name: str,
    args: tuple[str, ...],
    image: str,
    env: tuple[str, ...],
    labels: str,
    port: int | None,
    restart: str,
    image_pull_policy: str,
    as_command: bool,
    dry_run: str,
    output: str,
    namespace: str,
    sync: bool,
    wait: float,
) -> None:
    """Run one pod: pycri-kubelet run NAME --image IMG [-- ARGS...]."""
    env_map = dict(_pair(item, "--env") for item in env)
    label_map = dict(_pair(item, "--labels") for item in labels.split(",") if item)
    document = pod_document(
        name,
        image,
        namespace=namespace,
        command=args if as_command else (),
        args=() if as_command else args,
        env=env_map,
        labels=label_map or None,
        port=port,
        restart=restart,
        pull_policy=image_pull_policy,
    )
    objects = _objects(session, [document], "run")
    if dry_run == "client":
        _print_document(document, output or "yaml")
        return
    _publish(session, objects, sync=sync, wait=wait)


def _pair(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint=option)
    return key, value


def _print_document(document: Any, output: str) -> None:
    import json

    if output == "json":
        click.echo(json.dumps(document, indent=4))
    else:
        click.echo(yaml.safe_dump(document, sort_keys=True).rstrip())


@click.group("create")
def create_group() -> None:
    """Create a workload."""


@create_group.command("deployment")
@click.argument("name")
@click.argument("command", nargs=-1)
@click.option("--image", required=True, help="Container image.")
@click.option("--replicas", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--port", type=int, default=None, help="Container port.")
@click.option(
    "--image-pull-policy",
    type=click.Choice(["", "Always", "IfNotPresent", "Never"]),
    default="",
)
@click.option("--dry-run", type=click.Choice(["none", "client"]), default="none")
@click.option("-o", "--output", type=click.Choice(["", "yaml", "json"]), default="")
@_namespace_option
@_sync_option
@_wait_option
@node_options
def create_deployment(
    session: KubectlSession,
    name: str,
    command: tuple[str, ...],
    image: str,
    replicas: int,
    port: int | None,
    image_pull_policy: str,
    dry_run: str,
    output: str,
    namespace: str,
    sync: bool,
    wait: float,
) -> None:
    """Replicas of one pod template: NAME-0 .. NAME-(N-1) [-- COMMAND...]."""
    document = deployment_document(
        name,
        image,
        namespace=namespace,
        replicas=replicas,
        command=command,
        port=port,
        pull_policy=image_pull_policy,
    )
    objects = _objects(session, [document], "create deployment")
    if dry_run == "client":
        _print_document(document, output or "yaml")
        return
    _publish(session, objects, sync=sync, wait=wait)


@click.command("apply")
@click.option("-f", "--filename", "files", multiple=True, required=True, help="File, dir or -.")
@_sync_option
@_wait_option
@node_options
def apply_command(session: KubectlSession, files: tuple[str, ...], sync: bool, wait: float) -> None:
    """Write Pods and Deployments from files into the manifest directory."""
    objects = []
    for source, text in _read_files(files):
        objects += _objects(session, load_documents(text, source), source)
    _publish(session, objects, sync=sync, wait=wait)


@click.command("scale")
@click.argument("target")
@click.option("--replicas", type=click.IntRange(min=0), required=True)
@_namespace_option
@_sync_option
@_wait_option
@node_options
def scale_command(
    session: KubectlSession, target: str, replicas: int, namespace: str, sync: bool, wait: float
) -> None:
    """Set a Deployment's replicas: scale [deployment/]NAME --replicas N."""
    kind, name = kind_name(target, "Deployment")
    if kind != "Deployment":
        raise KubeletCLIError(
            f"pods cannot be scaled: create a Deployment "
            f"(pycri-kubelet create deployment {name} --image IMG --replicas {replicas})"
        )
    kubelet = session.kubelet
    try:
        kubelet.scale(name, replicas, namespace)
    except KeyError:
        raise KubeletCLIError(f'deployments.apps "{name}" not found') from None
    click.echo(f"deployment.apps/{name} scaled")
    obj = kubelet.manifests.load().object("Deployment", namespace, name)
    if obj is not None:
        _publish_changes(session, obj, sync=sync, wait=wait)


def _publish_changes(
    session: KubectlSession, obj: ManifestObject, *, sync: bool, wait: float
) -> None:
    direct = session.direct()
    uids = {pod.uid for pod in obj.pods}
    if direct and sync:
        converge(session, uids, wait=wait, direct=True)
    elif not direct and wait:
        converge(session, uids, wait=wait, direct=False)


@click.command("delete")
@click.argument("targets", nargs=-1)
@click.option("-f", "--filename", "files", multiple=True, help="Delete what a file defines.")
@click.option("--grace-period", type=int, default=-1, help="Seconds to stop (default: the pod's).")
@click.option("--now", is_flag=True, help="Grace period of 1 second.")
@click.option("--force", is_flag=True, help="With --grace-period=0: kill at once.")
@click.option("--wait/--no-wait", default=True, help="Wait until the pods are gone.")
@_namespace_option
@node_options
def delete_command(
    session: KubectlSession,
    targets: tuple[str, ...],
    files: tuple[str, ...],
    grace_period: int,
    now: bool,
    force: bool,
    wait: bool,
    namespace: str,
) -> None:
    """Delete pods or deployments: delete pod NAME..., delete deployment/NAME, delete -f FILE."""
    grace: int | None = None if grace_period < 0 else grace_period
    if now:
        grace = 1
    if grace == 0 and not force:
        grace = 1  # kubectl: --grace-period=0 means 1 unless --force
    wanted = _deletion_list(session, targets, files, namespace)
    kubelet = session.kubelet
    direct = session.direct()
    pending: set[str] = set()
    for kind, ns, name in wanted:
        noun = "pod" if kind == "Pod" else "deployment.apps"
        if direct:
            found = kubelet.delete(name, ns, kind=kind, grace_period=grace)
        else:
            uids = kubelet.request_deletion(name, ns, kind=kind, grace_period=grace)
            pending |= set(uids)
            found = bool(uids)
        if not found:
            raise KubeletCLIError(f'{noun}s "{name}" not found')
        click.echo(f'{noun} "{name}" deleted')
    if pending and wait:
        # the daemon removes a pod's directory, and its deletion request, once it is done
        requests = [session.settings.paths.pod_dir(uid) / "deletion.json" for uid in pending]
        deadline = time.monotonic() + (grace if grace is not None else 30) + 60
        while any(request.exists() for request in requests):
            if time.monotonic() > deadline:
                raise KubeletCLIError("timed out waiting for the daemon to remove the pods")
            time.sleep(0.3)


def _deletion_list(
    session: KubectlSession, targets: Sequence[str], files: Sequence[str], namespace: str
) -> list[tuple[str, str, str]]:
    wanted: list[tuple[str, str, str]] = []
    for _, text in _read_files(files):
        manifest = parse_documents(load_documents(text), node=session.settings.node_name)
        wanted += [(o.kind, o.namespace, o.name) for o in manifest.objects]
    kind = ""
    for target in targets:
        if "/" in target:
            k, name = kind_name(target)
            wanted.append((k, namespace, name))
        elif not kind:
            if target.lower() not in _KINDS:
                raise click.UsageError(f"unknown resource type {target!r}: pod or deployment")
            kind = _KINDS[target.lower()]
        else:
            wanted.append((kind, namespace, target))
    if not wanted:
        raise click.UsageError("nothing to delete: delete pod NAME, delete deployment/NAME or -f")
    return wanted


COMMANDS: list[click.Command] = [
    run_command,
    create_group,
    apply_command,
    scale_command,
    delete_command,
]
