"""Pod sandboxes: ``runp``, ``pods``, ``inspectp``, ``stopp``, ``rmp``."""

from __future__ import annotations

import uuid
from typing import Any

import click

from pycri.api import api_pb2 as cri
from pycri.cli.common import (
    compile_regex,
    echo_map,
    go_map,
    label_option,
    labels_from,
    load_spec,
    output_option,
    pass_session,
    run_each,
    take,
    template_option,
)
from pycri.cli.errors import CLIError
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
from pycri.cli.units import ago, go_time, go_time_string, parse_duration, truncate_id

__all__ = ["COMMANDS", "list_pods", "load_pod_config", "pod_state_name"]

_STATES = {"ready": cri.SANDBOX_READY, "notready": cri.SANDBOX_NOTREADY}


def pod_state_name(state: int) -> str:
    return "Ready" if state == cri.SANDBOX_READY else "NotReady"


def load_pod_config(path: str) -> cri.PodSandboxConfig:
    """A pod-config.[json|yaml] file, checked like crictl does (uid made up if absent)."""
    config = load_spec(path, cri.PodSandboxConfig, "podSandboxConfig")
    if not config.HasField("metadata"):
        raise CLIError(f"load podSandboxConfig: metadata is not set in {path}")
    if not config.metadata.uid:
        config.metadata.uid = str(uuid.uuid4())
    if not config.metadata.name or not config.metadata.namespace:
        raise CLIError(f"load podSandboxConfig: name or namespace is not in metadata of {path}")
    return config


def list_pods(
    session: CrictlSession,
    *,
    pod_id: str = "",
    state: str = "",
    labels: dict[str, str] | None = None,
    name: str = "",
    namespace: str = "",
    latest: bool = False,
    last: int = 0,
) -> list[cri.PodSandbox]:
    """ListPodSandbox with crictl's client-side filters, newest first."""
    kwargs: dict[str, Any] = {"id": pod_id, "label_selector": labels or {}}
    if state:
        if state.lower() not in _STATES:
            raise click.BadParameter("--state should be ready or notready", param_hint="--state")
        kwargs["state"] = cri.PodSandboxStateValue(state=_STATES[state.lower()])
    name_re = compile_regex(name, "--name")
    ns_re = compile_regex(namespace, "--namespace")
    client = session.client
    request = cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(**kwargs))
    items = [
        pod
        for pod in session.rpc(client.list_pod_sandbox, request).items
        if pod.HasField("metadata")
        and (name_re is None or name_re.search(pod.metadata.name))
        and (ns_re is None or ns_re.search(pod.metadata.namespace))
    ]
    items.sort(key=lambda pod: pod.created_at, reverse=True)
    return take(items, latest, last)


def _filter_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--name", default="", help="Filter by pod name regular expression."),
            click.option(
                "--namespace", default="", help="Filter by pod namespace regular expression."
            ),
            click.option("-s", "--state", default="", help="Filter by pod state (ready|notready)."),
            label_option,
            click.option(
                "-l", "--latest", is_flag=True, help="Show the most recently created pod."
            ),
            click.option(
                "-n", "--last", default=0, help="Show the last n recently created pods (0: all)."
            ),
        ]
    ):
        func = option(func)
    return func


@click.command("runp")
@click.option("-r", "--runtime", default="", help="Runtime handler to use.")
@click.option(
    "-T", "--cancel-timeout", default="0s", help="Time to wait for the request (e.g. 1m; 0: none)."
)
@click.argument("pod_config", metavar="pod-config.[json|yaml]")
@pass_session
def runp_command(
    session: CrictlSession, runtime: str, cancel_timeout: str, pod_config: str
) -> None:
    """Run a new pod."""
    config = load_pod_config(pod_config)
    timeout = parse_duration(cancel_timeout)
    client = session.client
    request = cri.RunPodSandboxRequest(config=config, runtime_handler=runtime)
    resp = session.rpc(client.run_pod_sandbox, request, timeout=timeout if timeout > 0 else -1.0)
    echo(resp.pod_sandbox_id)


@click.command("pods")
@click.option("--id", "pod_id", default="", help="Filter by pod id.")
@_filter_options
@click.option("-v", "--verbose", is_flag=True, help="Show verbose info for pods.")
@click.option("-q", "--quiet", is_flag=True, help="List only pod IDs.")
@output_option(["json", "yaml", "table"], default="table")
@click.option("--no-trunc", is_flag=True, help="Show output without truncating the ID.")
@pass_session
def pods_command(
    session: CrictlSession,
    pod_id: str,
    name: str,
    namespace: str,
    state: str,
    labels: tuple[str, ...],
    latest: bool,
    last: int,
    verbose: bool,
    quiet: bool,
    output: str,
    no_trunc: bool,
) -> None:
    """List pods."""
    pods = list_pods(
        session,
        pod_id=pod_id,
        state=state,
        labels=labels_from(labels),
        name=name,
        namespace=namespace,
        latest=latest,
        last=last,
    )
    if output != "table":
        emit_message(cri.ListPodSandboxResponse(items=pods), output)
    elif quiet:
        for pod in pods:
            echo(pod.id)
    elif verbose:
        for pod in pods:
            _echo_verbose(pod)
    else:
        header = ["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]
        rows = [header] + [
            [
                pod.id if no_trunc else truncate_id(pod.id),
                ago(pod.created_at),
                pod_state_name(pod.state),
                pod.metadata.name,
                pod.metadata.namespace,
                str(pod.metadata.attempt),
                pod.runtime_handler or "(default)",
            ]
            for pod in pods
        ]
        echo(render_table(rows, {2: style}))


def _echo_verbose(pod: cri.PodSandbox) -> None:
    echo(f"ID: {pod.id}")
    meta = pod.metadata
    for label, value in (("Name", meta.name), ("UID", meta.uid), ("Namespace", meta.namespace)):
        if value:
            echo(f"{label}: {value}")
    if meta.attempt:
        echo(f"Attempt: {meta.attempt}")
    echo(f"Status: {pod_state_name(pod.state)}")
    echo(f"Created: {go_time_string(pod.created_at)}")
    echo_map("Labels", pod.labels)
    echo_map("Annotations", pod.annotations)
    echo(f"Runtime: {pod.runtime_handler or '(default)'}")
    echo()


@click.command("inspectp")
@click.argument("ids", nargs=-1, metavar="POD-ID [POD-ID...]")
@output_option(["json", "yaml", "go-template", "table"], default="json")
@click.option("-q", "--quiet", is_flag=True, help="Do not show verbose information.")
@template_option
@_filter_options
@pass_session
def inspectp_command(
    session: CrictlSession,
    ids: tuple[str, ...],
    output: str,
    quiet: bool,
    template: str,
    name: str,
    namespace: str,
    state: str,
    labels: tuple[str, ...],
    latest: bool,
    last: int,
) -> None:
    """Display the status of one or more pods (the filters apply without ids)."""
    targets = list(ids) or [
        pod.id
        for pod in list_pods(
            session,
            state=state,
            labels=labels_from(labels),
            name=name,
            namespace=namespace,
            latest=latest,
            last=last,
        )
    ]
    if not targets:
        raise CLIError("no pod ids given and no pod matches the filters")
    client = session.client
    docs = []
    for pod_id in targets:
        request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=not quiet)
        resp = session.rpc(client.pod_sandbox_status, request)
        if output == "table":
            _echo_status_table(resp, not quiet)
            continue
        status = status_dict(resp.status, {"createdAt": go_time(resp.status.created_at)})
        docs.append(status_document(status, resp.info))
    emit_status(docs, output, template)


def _echo_status_table(resp: cri.PodSandboxStatusResponse, verbose: bool) -> None:
    status = resp.status
    echo(f"ID: {status.id}")
    if status.HasField("metadata"):
        meta = status.metadata
        for label, value in (("Name", meta.name), ("UID", meta.uid), ("Namespace", meta.namespace)):
            if value:
                echo(f"{label}: {value}")
        echo(f"Attempt: {meta.attempt}")
    echo(f"Status: {cri.PodSandboxState.Name(status.state)}")
    echo(f"Created: {go_time_string(status.created_at)}")
    if status.HasField("network"):
        echo(f"IP Addresses: {status.network.ip}")
        for extra in status.network.additional_ips:
            echo(f"Additional IP: {extra.ip}")
    echo_map("Labels", status.labels)
    echo_map("Annotations", status.annotations)
    if verbose:
        echo(f"Info: {go_map(resp.info)}")


@click.command("stopp")
@click.argument("ids", nargs=-1, required=True, metavar="POD-ID [POD-ID...]")
@pass_session
def stopp_command(session: CrictlSession, ids: tuple[str, ...]) -> None:
    """Stop one or more running pods."""
    run_each(ids, lambda pod_id: _stop(session, pod_id))


def _stop(session: CrictlSession, pod_id: str) -> None:
    client = session.client
    session.rpc(client.stop_pod_sandbox, cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    echo(f"Stopped sandbox {pod_id}")


@click.command("rmp")
@click.argument("ids", nargs=-1, metavar="POD-ID [POD-ID...]")
@click.option("-f", "--force", is_flag=True, help="Stop the pod first if it is running.")
@click.option("-a", "--all", "all_pods", is_flag=True, help="Remove all pods.")
@pass_session
def rmp_command(session: CrictlSession, ids: tuple[str, ...], force: bool, all_pods: bool) -> None:
    """Remove one or more pods."""
    targets = list(ids)
    client = session.client
    if all_pods:
        targets = [
            p.id for p in session.rpc(client.list_pod_sandbox, cri.ListPodSandboxRequest()).items
        ]
        if not targets:
            echo("No pods to remove", err=True)
            return
    if not targets:
        raise click.UsageError("give POD-IDs or --all")

    def remove(pod_id: str) -> None:
        status = session.rpc(
            client.pod_sandbox_status, cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
        )
        if status.status.state == cri.SANDBOX_READY:
            if not force:
                raise CLIError(f"pod sandbox {pod_id!r} is running, please stop it first (or -f)")
            _stop(session, pod_id)
        session.rpc(client.remove_pod_sandbox, cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        echo(f"Removed sandbox {pod_id}")

    run_each(targets, remove)


COMMANDS = [runp_command, pods_command, inspectp_command, stopp_command, rmp_command]
