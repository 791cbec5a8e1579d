"""Commands on a pod's containers: ``logs`` (the CRI log files) and ``exec`` (ExecSync)."""

from __future__ import annotations

import click

from pycri.api import api_pb2 as cri
from pycri.core.logread import LogFollower, LogOptions
from pycri.errors import CRIError
from pycri.kubelet.cli.session import KubectlSession, KubeletCLIError, node_options
from pycri.kubelet.cli.workload_commands import kind_name
from pycri.kubelet.sync.kubelet import PodInfo
from pycri.kubelet.sync.observed import ObservedContainer

__all__ = ["COMMANDS"]

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def _pod(session: KubectlSession, target: str, namespace: str) -> PodInfo:
    kind, name = kind_name(target, "Pod")
    pods = session.kubelet.pods(namespace)
    if kind == "Deployment":
        owned = [p for p in pods if p.pod is not None and p.pod.owner == name]
        if not owned:
            raise KubeletCLIError(f'deployments.apps "{name}" not found')
        return owned[0]
    found = next((p for p in pods if p.name == name), None)
    if found is None:
        raise KubeletCLIError(f'pods "{name}" not found')
    return found


def _container_name(info: PodInfo, wanted: str | None) -> str:
    names = (
        [c.name for c in info.pod.spec.all_containers()]
        if info.pod
        else [c.name for c in info.observed.containers]
        if info.observed
        else []
    )
    if wanted:
        if wanted not in names:
            raise KubeletCLIError(
                f"container {wanted} is not valid for pod {info.name} "
                f"(choose one of: {', '.join(names)})"
            )
        return wanted
    app = [c.name for c in info.pod.spec.containers] if info.pod else names
    default = info.pod.annotations.get(DEFAULT_CONTAINER, "") if info.pod else ""
    if default in app:
        return default
    if not app:
        raise KubeletCLIError(f"pod {info.name} has no containers")
    if len(app) > 1:
        click.echo(f'Defaulted container "{app[0]}" out of: {", ".join(app)}', err=True)
    return app[0]


def _instances(info: PodInfo, name: str) -> list[ObservedContainer]:
    return info.observed.named(name) if info.observed else []


def _waiting_reason(info: PodInfo, name: str) -> str:
    statuses = (*info.status.init_container_statuses, *info.status.container_statuses)
    status = next((s for s in statuses if s.name == name), None)
    return status.state.reason if status is not None else "ContainerCreating"


@click.command("logs")
@click.argument("pod")
@click.option("-c", "--container", default=None, help="Container (default: the first).")
@click.option("-f", "--follow", is_flag=True, help="Follow the log.")
@click.option("-p", "--previous", is_flag=True, help="The previous instance's log.")
@click.option("--tail", type=int, default=-1, help="Lines from the end (default: all).")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its time.")
@click.option("--limit-bytes", type=int, default=-1, help="Stop after this many bytes.")
@click.option("-n", "--namespace", default="default", show_default=True)
@node_options
def logs_command(
    session: KubectlSession,
    pod: str,
    container: str | None,
    follow: bool,
    previous: bool,
    tail: int,
    timestamps: bool,
    limit_bytes: int,
    namespace: str,
) -> None:
    """Print a container's log: logs POD [-c CONTAINER] [-f] [-p]."""
    info = _pod(session, pod, namespace)
    name = _container_name(info, container)
    instances = _instances(info, name)
    if previous:
        if len(instances) < 2:
            raise KubeletCLIError(
                f'previous terminated container "{name}" in pod "{info.name}" not found'
            )
        instance = instances[1]
    elif instances:
        instance = instances[0]
    else:
        raise KubeletCLIError(
            f'container "{name}" in pod "{info.name}" is waiting to start: '
            f"{_waiting_reason(info, name)}"
        )
    path = instance.log_path or str(
        session.settings.paths.log_dir(info.namespace, info.name, info.uid)
        / name
        / f"{instance.attempt}.log"
    )
    client = session.client

    def is_running() -> bool:
        try:
            state = client.container_status(
                cri.ContainerStatusRequest(container_id=instance.id)
            ).status.state
        except CRIError:
            return False
        return state in (cri.CONTAINER_RUNNING, cri.CONTAINER_CREATED)

    def write(stream: str, data: bytes) -> None:
        click.echo(data, nl=False)  # kubectl logs puts both streams on stdout

    options = LogOptions(tail, 0, timestamps, follow, limit_bytes, "")
    try:
        LogFollower(path, options, write, is_running).run()
    except FileNotFoundError:
        raise KubeletCLIError(
            f"log file {path} does not exist (logs are read on the node, from the log root)"
        ) from None
    except KeyboardInterrupt:
        return


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.argument("command", nargs=-1, required=True)
@click.option("-c", "--container", default=None, help="Container (default: the first).")
@click.option("--exec-timeout", type=int, default=0, help="Seconds before the command is killed.")
@click.option("-n", "--namespace", default="default", show_default=True)
@node_options
def exec_command(
    session: KubectlSession,
    pod: str,
    command: tuple[str, ...],
    container: str | None,
    exec_timeout: int,
    namespace: str,
) -> None:
    """Run a command in a container (ExecSync): exec POD [-c C] -- CMD [ARGS...]."""
    info = _pod(session, pod, namespace)
    name = _container_name(info, container)
    running = [c for c in _instances(info, name) if c.running]
    if not running:
        raise KubeletCLIError(
            f'cannot exec into container "{name}" of pod "{info.name}": it is not running '
            f"({_waiting_reason(info, name)})"
        )
    response = session.client.exec_sync(
        cri.ExecSyncRequest(container_id=running[0].id, cmd=list(command), timeout=exec_timeout)
    )
    click.echo(response.stdout, nl=False)
    click.echo(response.stderr, nl=False, err=True)
    if response.exit_code:
        click.echo(f"command terminated with exit code {response.exit_code}", err=True)
        raise click.exceptions.Exit(response.exit_code)


COMMANDS: list[click.Command] = [logs_command, exec_command]
