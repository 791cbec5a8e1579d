"""``version``, ``info`` and ``events``: the runtime itself."""

from __future__ import annotations

from typing import Any

import click
from google.protobuf import json_format
from google.protobuf.message import Message

from pycri.api import api_pb2 as cri
from pycri.cli.common import output_option, pass_session, template_option
from pycri.cli.output import echo, emit, emit_message, emit_status, proto_dict, status_document
from pycri.cli.session import CrictlSession

__all__ = ["COMMANDS"]

CRI_VERSION = "v1"


@click.command("version")
@output_option(["json", "yaml", "table"], default="table")
@pass_session
def version_command(session: CrictlSession, output: str) -> None:
    """Display runtime version information.

    -o json|yaml is a pycrictl extension (crictl prints the table only).
    """
    client = session.client
    resp = session.rpc(client.version, cri.VersionRequest(version=CRI_VERSION))
    if output != "table":
        emit_message(resp, output)
        return
    echo(f"Version:  {resp.version}")
    echo(f"RuntimeName:  {resp.runtime_name}")
    echo(f"RuntimeVersion:  {resp.runtime_version}")
    echo(f"RuntimeApiVersion:  {resp.runtime_api_version}")


def _go_struct(msg: Message) -> dict[str, Any]:
    """Go's json.Marshal of a generated struct: proto names, zero values omitted."""
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


@click.command("info")
@output_option(["json", "yaml", "go-template"], default="json")
@click.option("-q", "--quiet", is_flag=True, help="Do not show verbose information.")
@template_option
@pass_session
def info_command(session: CrictlSession, output: str, quiet: bool, template: str) -> None:
    """Display information of the container runtime."""
    client = session.client
    resp = session.rpc(client.status, cri.StatusRequest(verbose=not quiet))
    extra: dict[str, object] = {}
    if resp.runtime_handlers:
        extra["runtimeHandlers"] = [_go_struct(h) for h in resp.runtime_handlers]
    if resp.HasField("features"):
        extra["features"] = _go_struct(resp.features)
    doc = status_document(proto_dict(resp.status), resp.info, extra)
    emit_status([doc], output, template)


@click.command("events")
@output_option(["json", "yaml", "go-template"], default="json")
@template_option
@pass_session
def events_command(session: CrictlSession, output: str, template: str) -> None:
    """Stream the events of containers (until interrupted)."""
    if output != "go-template" and template:
        raise click.UsageError(f"template can't be used with {output!r} format")
    client = session.client
    session.debug("GetContainerEvents: streaming")
    try:
        for event in client.get_container_events(cri.GetEventsRequest()):
            if output == "go-template":
                emit(proto_dict(event), output, template, go_maps=False)
            else:
                emit_message(event, output)
    except KeyboardInterrupt:
        return


COMMANDS = [version_command, info_command, events_command]
