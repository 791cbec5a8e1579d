"""Containers: ``create``, ``start``, ``run``, ``ps``, ``inspect``, ``stop``, ``rm``, ``update``."""

from __future__ import annotations

import re
from typing import Any

import click

from pycri.api import api_pb2 as cri
from pycri.cli.common import (
    compile_regex,
    echo_map,
    go_map,
    label_option,
    labels_from,
    output_option,
    pass_session,
    take,
    template_option,
)
from pycri.cli.errors import CLIError
from pycri.cli.images import image_status
from pycri.cli.output import (
    echo,
    emit_message,
    emit_status,
    render_table,
    status_dict,
    status_document,
    style,
)
from pycri.cli.session import CrictlSession
from pycri.cli.units import ago, go_time, truncate_id

__all__ = ["COMMANDS", "PodIndex", "list_containers", "state_name"]

POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
_STATES = {
    "created": cri.CONTAINER_CREATED,
    "running": cri.CONTAINER_RUNNING,
    "exited": cri.CONTAINER_EXITED,
    "unknown": cri.CONTAINER_UNKNOWN,
}
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


_STATE_NAMES: dict[int, str] = {
    cri.CONTAINER_CREATED: "Created",
    cri.CONTAINER_RUNNING: "Running",
    cri.CONTAINER_EXITED: "Exited",
}


def state_name(state: int) -> str:
    return _STATE_NAMES.get(state, "Unknown")


class PodIndex:
    """Pod name and namespace of containers: the kubelet's labels, else the pod itself.

    crictl shows ``unknown`` for containers that were not made by the
    kubelet; one ListPodSandbox call tells us the real names.
    """

    def __init__(self, session: CrictlSession) -> None:
        self._session = session
        self._pods: dict[str, cri.PodSandboxMetadata] | None = None

    def _meta(self, pod_id: str) -> cri.PodSandboxMetadata | None:
        if self._pods is None:
            client = self._session.client
            items = self._session.rpc(client.list_pod_sandbox, cri.ListPodSandboxRequest()).items
            self._pods = {pod.id: pod.metadata for pod in items}
        return self._pods.get(pod_id)

    def name(self, ctr: cri.Container) -> str:
        if POD_NAME_LABEL in ctr.labels:
            return ctr.labels[POD_NAME_LABEL]
        meta = self._meta(ctr.pod_sandbox_id)
        return meta.name if meta else "unknown"

    def namespace(self, ctr: cri.Container) -> str:
        if POD_NAMESPACE_LABEL in ctr.labels:
            return ctr.labels[POD_NAMESPACE_LABEL]
        meta = self._meta(ctr.pod_sandbox_id)
        return meta.namespace if meta else "unknown"


def list_containers(
    session: CrictlSession,
    *,
    ctr_id: str = "",
    pod: str = "",
    state: str = "",
    labels: dict[str, str] | None = None,
    name: str = "",
    namespace: str = "",
    image: str = "",
    show_all: bool = False,
    latest: bool = False,
    last: int = 0,
    pods: PodIndex | None = None,
) -> list[cri.Container]:
    """ListContainers with crictl's defaults (running only) and filters, newest first."""
    kwargs: dict[str, Any] = {"id": ctr_id, "pod_sandbox_id": pod, "label_selector": labels or {}}
    if state:
        if state.lower() not in _STATES:
            raise click.BadParameter(
                "--state should be one of created, running, exited or unknown", param_hint="--state"
            )
        kwargs["state"] = cri.ContainerStateValue(state=_STATES[state.lower()])
    elif not show_all:
        kwargs["state"] = cri.ContainerStateValue(state=cri.CONTAINER_RUNNING)
    if latest or last > 0:
        kwargs.pop("state", None)
    name_re = compile_regex(name, "--name")
    ns_re = compile_regex(namespace, "--namespace")
    index = pods or PodIndex(session)
    client = session.client
    request = cri.ListContainersRequest(filter=cri.ContainerFilter(**kwargs))
    wanted_image = _image_id(session, image) if image else None
    found = []
    for ctr in session.rpc(client.list_containers, request).containers:
        if not ctr.HasField("metadata"):
            continue
        if name_re is not None and not name_re.search(ctr.metadata.name):
            continue
        if ns_re is not None and not ns_re.search(index.namespace(ctr)):
            continue
        if image and (wanted_image is None or _image_id(session, ctr.image.image) != wanted_image):
            continue
        found.append(ctr)
    found.sort(key=lambda ctr: ctr.created_at, reverse=True)
    return take(found, latest, last)


def _image_id(session: CrictlSession, image: str) -> str | None:
    resp = image_status(session, image)
    return resp.image.id if resp.HasField("image") else None


def _filter_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--name", default="", help="Filter by container name regular expression."),
            click.option(
                "--namespace", default="", help="Filter by pod namespace regular expression."
            ),
            click.option("-p", "--pod", default="", help="Filter by pod id."),
            click.option("--image", default="", help="Filter by container image."),
            click.option(
                "-s",
                "--state",
                default="",
                help="Filter by state (created|running|exited|unknown).",
            ),
            label_option,
            click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers."),
            click.option("-l", "--latest", is_flag=True, help="Show the most recently created."),
            click.option(
                "-n", "--last", default=0, help="Show the last n recently created (0: all)."
            ),
        ]
    ):
        func = option(func)
    return func


@click.command("ps")
@click.option("--id", "ctr_id", default="", help="Filter by container id.")
@_filter_options
@click.option("-v", "--verbose", is_flag=True, help="Show verbose information for containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@output_option(["json", "yaml", "table"], default="table")
@click.option("--no-trunc", is_flag=True, help="Show output without truncating the ID.")
@click.option("-r", "--resolve-image-path", is_flag=True, help="Show image path, not image id.")
@pass_session
def ps_command(
    session: CrictlSession,
    /,
    ctr_id: str,
    verbose: bool,
    quiet: bool,
    output: str,
    no_trunc: bool,
    resolve_image_path: bool,
    labels: tuple[str, ...],
    **filters: Any,
) -> None:
    """List containers (POD and NAMESPACE come from the pod when labels lack them)."""
    pods = PodIndex(session)
    found = list_containers(
        session, ctr_id=ctr_id, labels=labels_from(labels), pods=pods, **filters
    )
    if output != "table":
        emit_message(cri.ListContainersResponse(containers=found), output)
        return
    if quiet:
        for ctr in found:
            echo(ctr.id)
        return
    if verbose:
        for ctr in found:
            _echo_verbose(ctr, pods)
        return
    rows = [["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]]
    rows[0].append("NAMESPACE")
    for ctr in found:
        image = ctr.image.image
        if not no_trunc and _DIGEST.match(image):
            image = truncate_id(image, image.split(":", 1)[0] + ":")
        if resolve_image_path:
            status = image_status(session, image)
            image = status.image.repo_tags[0] if status.image.repo_tags else image
        rows.append(
            [
                ctr.id if no_trunc else truncate_id(ctr.id),
                image,
                ago(ctr.created_at),
                state_name(ctr.state),
                ctr.metadata.name,
                str(ctr.metadata.attempt),
                ctr.pod_sandbox_id if no_trunc else truncate_id(ctr.pod_sandbox_id),
                pods.name(ctr),
                pods.namespace(ctr),
            ]
        )
    echo(render_table(rows, {3: style}))


def _echo_verbose(ctr: cri.Container, pods: PodIndex) -> None:
    echo(f"ID: {ctr.id}")
    echo(f"PodID: {ctr.pod_sandbox_id}")
    echo(f"Namespace: {pods.namespace(ctr)}")
    if ctr.metadata.name:
        echo(f"Name: {ctr.metadata.name}")
    echo(f"Attempt: {ctr.metadata.attempt}")
    echo(f"State: {state_name(ctr.state)}")
    if ctr.HasField("image"):
        echo(f"Image: {ctr.image.image}")
    echo(f"Created: {ago(ctr.created_at)}")
    echo_map("Labels", ctr.labels)
    echo_map("Annotations", ctr.annotations)
    echo()


def _status_times(status: cri.ContainerStatus) -> dict[str, str]:
    finished = status.state == cri.CONTAINER_EXITED or (
        status.state == cri.CONTAINER_UNKNOWN and status.finished_at > 0
    )
    return {
        "createdAt": go_time(status.created_at),
        "startedAt": go_time(status.started_at, zero=status.state == cri.CONTAINER_CREATED),
        "finishedAt": go_time(status.finished_at, zero=not finished),
    }


@click.command("inspect")
@click.argument("ids", nargs=-1, metavar="CONTAINER-ID [CONTAINER-ID...]")
@output_option(["json", "yaml", "go-template", "table"], default="json")
@click.option("-q", "--quiet", is_flag=True, help="Do not show verbose information.")
@template_option
@_filter_options
@pass_session
def inspect_command(
    session: CrictlSession,
    /,
    ids: tuple[str, ...],
    output: str,
    quiet: bool,
    template: str,
    labels: tuple[str, ...],
    **filters: Any,
) -> None:
    """Display the status of one or more containers (the filters apply without ids)."""
    targets = list(ids) or [
        ctr.id for ctr in list_containers(session, labels=labels_from(labels), **filters)
    ]
    if not targets:
        raise CLIError("no container ids given and no container matches the filters")
    client = session.client
    docs = []
    for ctr_id in targets:
        request = cri.ContainerStatusRequest(container_id=ctr_id, verbose=not quiet)
        resp = session.rpc(client.container_status, request)
        if output == "table":
            _echo_status_table(resp, not quiet)
        else:
            status = status_dict(resp.status, _status_times(resp.status))
            docs.append(status_document(status, resp.info))
    emit_status(docs, output, template)


def _echo_status_table(resp: cri.ContainerStatusResponse, verbose: bool) -> None:
    status = resp.status
    echo(f"ID: {status.id}")
    if status.metadata.name:
        echo(f"Name: {status.metadata.name}")
    if status.metadata.attempt:
        echo(f"Attempt: {status.metadata.attempt}")
    echo(f"State: {cri.ContainerState.Name(status.state)}")
    echo(f"Created: {ago(status.created_at)}")
    if status.state != cri.CONTAINER_CREATED:
        echo(f"Started: {ago(status.started_at)}")
    if status.state == cri.CONTAINER_EXITED:
        if status.finished_at > 0:
            echo(f"Finished: {ago(status.finished_at)}")
        echo(f"Exit Code: {status.exit_code}")
    echo_map("Labels", status.labels)
    echo_map("Annotations", status.annotations)
    if verbose:
        echo(f"Info: {go_map(resp.info)}")


COMMANDS = [ps_command, inspect_command]
