"""``exec``: run a command in running containers, streamed (Exec) or synchronously (ExecSync).

This module also registers ``attach`` and ``port-forward``, which share
the streaming machinery (:mod:`pycri.cli.attach`, :mod:`pycri.cli.portforward`).
"""

from __future__ import annotations

from typing import Any

import click

from pycri.api import api_pb2 as cri
from pycri.cli.attach import TRANSPORT_HELP, attach_command, run_session, streaming_hint
from pycri.cli.common import labels_from
from pycri.cli.containers import list_containers
from pycri.cli.errors import CLIError, describe_rpc_error
from pycri.cli.output import echo
from pycri.cli.portforward import port_forward_command
from pycri.cli.session import CrictlSession
from pycri.errors import CRIError, UnimplementedError

__all__ = ["COMMANDS"]

_FILTERS = ("name", "pod", "image", "state", "labels", "latest", "last")


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("-s", "--sync", is_flag=True, help="Run the command synchronously (ExecSync).")
@click.option("--timeout", default=0, help="Timeout in seconds (0: none).")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY (streaming only).")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open (streaming only).")
@click.option("-r", "--transport", type=click.Choice(["spdy", "websocket"]), help=TRANSPORT_HELP)
@click.option("--name", default="", help="Exec in all containers whose name matches.")
@click.option("-p", "--pod", default="", help="Exec in all containers of this pod.")
@click.option("--image", default="", help="Exec in all containers of this image.")
@click.option("--state", default="", help="Exec in all containers in this state.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE")
@click.option("-l", "--latest", is_flag=True, help="Exec in the most recently created container.")
@click.option("-n", "--last", default=0, help="Exec in the last n containers.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print container ids.")
@click.option("-e", "--ignore-errors", is_flag=True, help="Ignore errors of the command.")
@click.option("-x", "--parallel", is_flag=True, help="Accepted for crictl compatibility.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[CONTAINER-ID] COMMAND [ARG...]")
@click.pass_context
def exec_command(ctx: click.Context, /, sync: bool, timeout: int, **opts: Any) -> None:
    """Run a command in a running container.

    The CONTAINER-ID is only needed when no filter (--name, --pod, --image,
    --state, --label, --latest, --last) is given. Without -s the command is
    streamed (Exec) and pycrictl exits with its exit code.
    """
    session = ctx.find_object(CrictlSession)
    assert session is not None
    args: tuple[str, ...] = opts.pop("args")
    filtered = any(opts[key] for key in _FILTERS)
    if not args or (not filtered and len(args) < 2):
        raise click.UsageError("give a CONTAINER-ID and a COMMAND")
    if filtered:
        found = list_containers(
            session,
            name=opts["name"],
            pod=opts["pod"],
            image=opts["image"],
            state=opts["state"],
            labels=labels_from(opts["labels"]),
            latest=opts["latest"],
            last=opts["last"],
        )
        ids, cmd = [ctr.id for ctr in found], list(args)
        if not ids:
            raise CLIError("no containers found per the filter flags")
    else:
        ids, cmd = [args[0]], list(args[1:])
    status = 0
    for ctr_id in ids:
        if filtered and not opts["quiet"]:
            echo(f"{ctr_id}:")
        try:
            if sync:
                code = _exec_sync(session, ctr_id, cmd, timeout)
            else:
                code = _exec_stream(session, ctr_id, cmd, opts["interactive"], opts["tty"])
        except UnimplementedError as err:
            raise streaming_hint(err) from None
        except CRIError as err:
            if not opts["ignore_errors"] and len(ids) == 1:
                raise
            echo(f"pycrictl: {describe_rpc_error(err)}", err=True)
            code = 1
        status = code or status
    ctx.exit(0 if opts["ignore_errors"] else status)


def _exec_sync(session: CrictlSession, ctr_id: str, cmd: list[str], timeout: int) -> int:
    client = session.client
    request = cri.ExecSyncRequest(container_id=ctr_id, cmd=cmd, timeout=timeout)
    resp = session.rpc(client.exec_sync, request)
    click.echo(resp.stdout, nl=False)
    click.echo(resp.stderr, nl=False, err=True)
    return resp.exit_code


def _exec_stream(
    session: CrictlSession, ctr_id: str, cmd: list[str], stdin: bool, tty: bool
) -> int:
    request = cri.ExecRequest(
        container_id=ctr_id, cmd=cmd, stdin=stdin, tty=tty, stdout=True, stderr=not tty
    )
    response = session.rpc(session.client.exec, request)
    return run_session(response.url, stdin=stdin, tty_mode=tty)


COMMANDS = [exec_command, attach_command, port_forward_command]
