"""``logs``: print a container's CRI log file (ContainerStatus.log_path), like crictl."""

from __future__ import annotations

import click
from click.core import ParameterSource

from pycri.api import api_pb2 as cri
from pycri.cli.errors import CLIError
from pycri.cli.session import CrictlSession
from pycri.cli.units import parse_since
from pycri.core.logread import LogFollower, LogOptions
from pycri.errors import CRIError

__all__ = ["COMMANDS", "previous_log_path"]


def previous_log_path(log_path: str, attempt: int) -> str:
    """The kubelet's ``<dir>/<attempt-1>.log`` for the previous instance."""
    slash, dot = log_path.rfind("/"), log_path.rfind(".")
    return f"{log_path[: slash + 1]}{attempt - 1}{log_path[dot:] if dot > slash else ''}"


def _write(stream: str, data: bytes) -> None:
    # click.echo writes bytes to the binary stream and flushes
    click.echo(data, nl=False, err=stream == "stderr")


@click.command("logs")
@click.argument("ctr_id", metavar="CONTAINER-ID")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-p", "--previous", is_flag=True, help="Logs of the previous instance.")
@click.option("-r", "--reopen", is_flag=True, help="Ask the runtime to reopen the log first.")
@click.option("--tail", default=-1, help="Lines to show from the end (default: all).")
@click.option("--limit-bytes", default=-1, help="Maximum bytes to print (default: no limit).")
@click.option(
    "--since", default="", help="Only logs since a time (2013-01-02T13:23:37Z) or duration (42m)."
)
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("-s", "--stream", type=click.Choice(["stdout", "stderr"]), default=None)
@click.pass_context
def logs_command(
    ctx: click.Context,
    ctr_id: str,
    follow: bool,
    previous: bool,
    reopen: bool,
    tail: int,
    limit_bytes: int,
    since: str,
    timestamps: bool,
    stream: str | None,
) -> None:
    """Fetch the logs of a container."""
    session = ctx.find_object(CrictlSession)
    assert session is not None
    if stream and ctx.get_parameter_source("tail") == ParameterSource.COMMANDLINE:
        raise click.UsageError("--tail and --stream are mutually exclusive")
    try:
        since_ns = parse_since(since) if since else 0
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--since") from None
    client = session.client
    if reopen:
        session.rpc(client.reopen_container_log, cri.ReopenContainerLogRequest(container_id=ctr_id))
    status = session.rpc(
        client.container_status, cri.ContainerStatusRequest(container_id=ctr_id)
    ).status
    path = status.log_path
    if not path:
        raise CLIError(f"container {ctr_id} has no log path set")
    if previous:
        if status.metadata.attempt == 0:
            raise CLIError(f"previous terminated container {status.metadata.name} not found")
        path = previous_log_path(path, status.metadata.attempt)

    def is_running() -> bool:
        try:
            request = cri.ContainerStatusRequest(container_id=status.id)
            return session.rpc(client.container_status, request).status.state in (
                cri.CONTAINER_RUNNING,
                cri.CONTAINER_CREATED,
            )
        except CRIError:
            return False

    options = LogOptions(tail, since_ns, timestamps, follow, limit_bytes, stream or "")
    follower = LogFollower(path, options, _write, is_running)
    try:
        follower.run()
    except FileNotFoundError:
        raise CLIError(
            f"log file {path} of container {ctr_id} does not exist (pycrictl reads the "
            "container's CRI log file, so it must run on the runtime's node)"
        ) from None
    except PermissionError:
        raise CLIError(f"permission denied reading {path} (try as root)") from None
    except KeyboardInterrupt:
        return


COMMANDS = [logs_command]
