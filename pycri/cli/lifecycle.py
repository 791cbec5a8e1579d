"""Container lifecycle: ``create``, ``start``, ``run``, ``stop``, ``rm``, ``update``."""

from __future__ import annotations

import glob
import os
from typing import Any

import click

from pycri.api import api_pb2 as cri
from pycri.cli.common import load_spec, pass_session, run_each
from pycri.cli.containers import list_containers
from pycri.cli.errors import CLIError
from pycri.cli.images import get_auth, pull_image
from pycri.cli.output import echo
from pycri.cli.pods import load_pod_config
from pycri.cli.session import CrictlSession
from pycri.cli.units import parse_duration

__all__ = ["COMMANDS", "load_container_config"]


def load_container_config(path: str) -> cri.ContainerConfig:
    """A container-config.[json|yaml] file, checked like crictl does."""
    config = load_spec(path, cri.ContainerConfig, "containerConfig")
    if not config.metadata.name:
        raise CLIError(f"load containerConfig: name is not set in the metadata of {path}")
    if not config.image.image:
        raise CLIError(f"load containerConfig: image is not set in {path}")
    if not config.image.user_specified_image:
        config.image.user_specified_image = config.image.image
    return config


def _pull_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--no-pull", is_flag=True, help="Do not pull the image."),
            click.option("--with-pull", is_flag=True, help="Pull the image first."),
            click.option("--creds", default="", metavar="USERNAME[:PASSWORD]"),
            click.option("--auth", default="", metavar="AUTH_STRING"),
            click.option("--username", default="", help="Prompt for the password of USERNAME."),
            click.option("-T", "--cancel-timeout", default="0s", help="Time to wait (0s: none)."),
            click.option("--pull-timeout", "--pt", envvar="CRICTL_PULL_TIMEOUT", default="0s"),
        ]
    ):
        func = option(func)
    return func


def _create(
    session: CrictlSession,
    pod_id: str,
    config_path: str,
    pod_config: cri.PodSandboxConfig,
    with_pull: bool,
    opts: dict[str, Any],
) -> str:
    config = load_container_config(config_path)
    try:
        timeout = parse_duration(opts["cancel_timeout"])
        pull_timeout = parse_duration(opts["pull_timeout"])
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    if with_pull:
        auth = get_auth(opts["creds"], opts["auth"], opts["username"])
        mounts = [m.image.image for m in config.mounts if m.image.image]
        for image in [config.image.image, *mounts]:
            pull_image(
                session,
                image,
                auth=auth,
                sandbox=pod_config,
                annotations=dict(config.image.annotations),
                timeout=pull_timeout,
            )
    client = session.client
    request = cri.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config
    )
    resp = session.rpc(client.create_container, request, timeout=timeout if timeout > 0 else -1.0)
    return resp.container_id


def _want_pull(no_pull: bool, with_pull: bool, default: bool) -> bool:
    if no_pull and with_pull:
        raise click.UsageError("conflict: --no-pull and --with-pull are both set")
    return with_pull or (default and not no_pull)


@click.command("create")
@click.argument("pod_id", metavar="POD")
@click.argument("config_path", metavar="container-config.[json|yaml]")
@click.argument("pod_config", metavar="pod-config.[json|yaml]")
@_pull_options
@pass_session
def create_command(
    session: CrictlSession,
    /,
    pod_id: str,
    config_path: str,
    pod_config: str,
    no_pull: bool,
    with_pull: bool,
    **opts: Any,
) -> None:
    """Create a new container in pod POD."""
    pull = _want_pull(no_pull, with_pull, session.settings.pull_image_on_create)
    sandbox = load_pod_config(pod_config)
    echo(_create(session, pod_id, config_path, sandbox, pull, opts))


@click.command("run")
@click.argument("config_path", metavar="container-config.[json|yaml]")
@click.argument("pod_config", metavar="pod-config.[json|yaml]")
@click.option("-r", "--runtime", default="", help="Runtime handler to use.")
@_pull_options
@pass_session
def run_command(
    session: CrictlSession,
    /,
    config_path: str,
    pod_config: str,
    runtime: str,
    no_pull: bool,
    with_pull: bool,
    **opts: Any,
) -> None:
    """Run a new container inside a new pod sandbox."""
    pull = _want_pull(no_pull, with_pull, not session.settings.disable_pull_on_run)
    sandbox = load_pod_config(pod_config)
    client = session.client
    request = cri.RunPodSandboxRequest(config=sandbox, runtime_handler=runtime)
    pod_id = session.rpc(client.run_pod_sandbox, request).pod_sandbox_id
    ctr_id = _create(session, pod_id, config_path, sandbox, pull, opts)
    _start(session, ctr_id)


def _start(session: CrictlSession, ctr_id: str) -> None:
    client = session.client
    session.rpc(client.start_container, cri.StartContainerRequest(container_id=ctr_id))
    echo(ctr_id)


@click.command("start")
@click.argument("ids", nargs=-1, required=True, metavar="CONTAINER-ID [CONTAINER-ID...]")
@pass_session
def start_command(session: CrictlSession, ids: tuple[str, ...]) -> None:
    """Start one or more created containers."""
    run_each(ids, lambda ctr_id: _start(session, ctr_id))


def _stop(session: CrictlSession, ctr_id: str, timeout: int) -> None:
    client = session.client
    request = cri.StopContainerRequest(container_id=ctr_id, timeout=timeout)
    session.rpc(client.stop_container, request)
    echo(ctr_id)


@click.command("stop")
@click.argument("ids", nargs=-1, metavar="CONTAINER-ID [CONTAINER-ID...]")
@click.option("-t", "--timeout", default=0, help="Seconds to wait before killing the container.")
@click.option("-a", "--all", "stop_all", is_flag=True, help="Stop all running containers.")
@pass_session
def stop_command(
    session: CrictlSession, ids: tuple[str, ...], timeout: int, stop_all: bool
) -> None:
    """Stop one or more running containers."""
    if stop_all and ids:
        raise click.UsageError("cannot specify CONTAINER-ID(s) when using --all")
    targets = list(ids)
    if stop_all:
        targets = [ctr.id for ctr in list_containers(session, state="running")]
        if not targets:
            echo("No running containers found.")
            return
    if not targets:
        raise click.UsageError("you must specify at least one CONTAINER-ID or use --all")
    run_each(targets, lambda ctr_id: _stop(session, ctr_id, timeout))


@click.command("rm")
@click.argument("ids", nargs=-1, metavar="CONTAINER-ID [CONTAINER-ID...]")
@click.option("-f", "--force", is_flag=True, help="Stop the container first if it is running.")
@click.option("-k", "--keep-logs", is_flag=True, help="Keep the log file and its rotations.")
@click.option("-a", "--all", "remove_all", is_flag=True, help="Remove all containers.")
@pass_session
def rm_command(
    session: CrictlSession, ids: tuple[str, ...], force: bool, keep_logs: bool, remove_all: bool
) -> None:
    """Remove one or more containers."""
    client = session.client
    targets = list(ids)
    if remove_all:
        listed = session.rpc(client.list_containers, cri.ListContainersRequest()).containers
        targets = [ctr.id for ctr in listed]
        if not targets:
            echo("No containers to remove", err=True)
            return
    if not targets:
        raise click.UsageError("give CONTAINER-IDs or --all")

    def remove(ctr_id: str) -> None:
        request = cri.ContainerStatusRequest(container_id=ctr_id)
        status = session.rpc(client.container_status, request).status
        if status.state == cri.CONTAINER_RUNNING:
            if not force:
                raise CLIError(f"container {ctr_id!r} is running, please stop it first (or -f)")
            _stop(session, ctr_id, 0)
        session.rpc(client.remove_container, cri.RemoveContainerRequest(container_id=ctr_id))
        echo(ctr_id)
        if not keep_logs and status.log_path:
            for path in [*glob.glob(glob.escape(status.log_path) + ".*"), status.log_path]:
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    echo(f"pycrictl: removing log file {path}: {err.strerror}", err=True)

    run_each(targets, remove)


@click.command("update")
@click.argument("ids", nargs=-1, required=True, metavar="CONTAINER-ID [CONTAINER-ID...]")
@click.option("--cpu-period", default=0, help="CPU CFS period (usecs); 0: system default.")
@click.option("--cpu-quota", default=0, help="CPU CFS hardcap limit (usecs) per period.")
@click.option("--cpu-share", default=0, help="CPU shares (relative weight).")
@click.option("--cpuset-cpus", default="", help="CPU(s) to use.")
@click.option("--cpuset-mems", default="", help="Memory node(s) to use.")
@click.option("--memory", default=0, help="Memory limit (in bytes).")
@click.option("--oom-score-adj", default=0, help="OOM killer score adjustment.")
@pass_session
def update_command(session: CrictlSession, /, ids: tuple[str, ...], **limits: Any) -> None:
    """Update the resources of one or more running containers (Linux)."""
    resources = cri.LinuxContainerResources(
        cpu_period=limits["cpu_period"],
        cpu_quota=limits["cpu_quota"],
        cpu_shares=limits["cpu_share"],
        cpuset_cpus=limits["cpuset_cpus"],
        cpuset_mems=limits["cpuset_mems"],
        memory_limit_in_bytes=limits["memory"],
        oom_score_adj=limits["oom_score_adj"],
    )
    client = session.client

    def update(ctr_id: str) -> None:
        request = cri.UpdateContainerResourcesRequest(container_id=ctr_id, linux=resources)
        session.rpc(client.update_container_resources, request)
        echo(ctr_id)

    run_each(ids, update)


COMMANDS = [
    create_command,
    start_command,
    run_command,
    stop_command,
    rm_command,
    update_command,
]
