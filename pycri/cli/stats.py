"""Resource usage: ``stats`` (containers) and ``statsp`` (pods)."""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from pycri.api import api_pb2 as cri
from pycri.cli.common import label_option, labels_from, output_option, pass_session
from pycri.cli.errors import CLIError
from pycri.cli.output import echo, emit_message, render_table
from pycri.cli.session import CrictlSession
from pycri.cli.units import human_size, truncate_id

__all__ = ["COMMANDS"]

_CLEAR = "\x1b[2J\x1b[H"


def _cpu_percent(new: int, old: int, new_ts: int, old_ts: int) -> float:
    if not new:
        return 0.0
    if new_ts == old_ts:
        raise CLIError("cpu stat is not updated during sample")
    return (new - old) / (new_ts - old_ts) * 100


def _container_stats(
    session: CrictlSession, request: cri.ListContainerStatsRequest
) -> list[cri.ContainerStats]:
    client = session.client
    stats = list(session.rpc(client.list_container_stats, request).stats)
    return sorted(stats, key=lambda s: s.attributes.id)


def _pod_stats(
    session: CrictlSession, request: cri.ListPodSandboxStatsRequest
) -> list[cri.PodSandboxStats]:
    client = session.client
    stats = list(session.rpc(client.list_pod_sandbox_stats, request).stats)
    return sorted(stats, key=lambda s: s.attributes.id)


def _loop(watch: bool, show: Callable[[], str]) -> None:
    while True:
        table = show()
        echo((_CLEAR if watch else "") + table)
        if not watch:
            return
        time.sleep(0.5)


def _container_table(
    session: CrictlSession, request: cri.ListContainerStatsRequest, seconds: int, show_all: bool
) -> str:
    old = {s.attributes.id: s for s in _container_stats(session, request)}
    time.sleep(seconds)
    rows = [["CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES", "SWAP"]]
    for stat in _container_stats(session, request):
        cpu, mem = stat.cpu.usage_core_nano_seconds.value, stat.memory.working_set_bytes.value
        if (not show_all and cpu == 0 and mem == 0) or stat.attributes.id not in old:
            continue
        prev = old[stat.attributes.id].cpu
        percent = _cpu_percent(
            cpu, prev.usage_core_nano_seconds.value, stat.cpu.timestamp, prev.timestamp
        )
        rows.append(
            [
                truncate_id(stat.attributes.id),
                stat.attributes.metadata.name,
                f"{percent:.2f}",
                human_size(mem),
                human_size(stat.writable_layer.used_bytes.value),
                str(stat.writable_layer.inodes_used.value),
                human_size(stat.swap.swap_usage_bytes.value),
            ]
        )
    return render_table(rows)


@click.command("stats")
@click.argument("ctr_id", required=False, default="", metavar="[ID]")
@click.option(
    "-a", "--all", "show_all", is_flag=True, help="Show all containers, not just running."
)
@click.option("--id", "id_filter", default="", help="Filter by container id.")
@click.option("-p", "--pod", default="", help="Filter by pod id.")
@label_option
@output_option(["json", "yaml", "table"], default="table")
@click.option("-s", "--seconds", default=1, help="Sample duration for CPU usage in seconds.")
@click.option("-w", "--watch", is_flag=True, help="Refresh until interrupted.")
@pass_session
def stats_command(
    session: CrictlSession,
    ctr_id: str,
    show_all: bool,
    id_filter: str,
    pod: str,
    labels: tuple[str, ...],
    output: str,
    seconds: int,
    watch: bool,
) -> None:
    """List container(s) resource usage statistics."""
    flt = cri.ContainerStatsFilter(
        id=id_filter or ctr_id, pod_sandbox_id=pod, label_selector=labels_from(labels)
    )
    request = cri.ListContainerStatsRequest(filter=flt)
    try:
        if output != "table":
            emit_message(
                cri.ListContainerStatsResponse(stats=_container_stats(session, request)), output
            )
            return
        _loop(watch, lambda: _container_table(session, request, seconds, show_all))
    except KeyboardInterrupt:
        return


def _pod_table(
    session: CrictlSession, request: cri.ListPodSandboxStatsRequest, seconds: int
) -> str:
    old = {s.attributes.id: s for s in _pod_stats(session, request)}
    time.sleep(seconds)
    rows = [["POD", "POD ID", "CPU %", "MEM"]]
    for stat in _pod_stats(session, request):
        usage = stat.linux if stat.HasField("linux") else stat.windows
        cpu, mem = usage.cpu.usage_core_nano_seconds.value, usage.memory.working_set_bytes.value
        if (cpu == 0 and mem == 0) or stat.attributes.id not in old:
            continue
        prev_stat = old[stat.attributes.id]
        prev = (prev_stat.linux if stat.HasField("linux") else prev_stat.windows).cpu
        percent = _cpu_percent(
            cpu, prev.usage_core_nano_seconds.value, usage.cpu.timestamp, prev.timestamp
        )
        rows.append(
            [
                stat.attributes.metadata.name,
                truncate_id(stat.attributes.id),
                f"{percent:.2f}",
                human_size(mem),
            ]
        )
    return render_table(rows)


@click.command("statsp")
@click.argument("pod_id", required=False, default="", metavar="[ID]")
@click.option("--id", "id_filter", default="", help="Filter by pod id.")
@label_option
@output_option(["json", "yaml", "table"], default="table")
@click.option("-s", "--seconds", default=1, help="Sample duration for CPU usage in seconds.")
@click.option("-w", "--watch", is_flag=True, help="Refresh until interrupted.")
@pass_session
def statsp_command(
    session: CrictlSession,
    pod_id: str,
    id_filter: str,
    labels: tuple[str, ...],
    output: str,
    seconds: int,
    watch: bool,
) -> None:
    """List pod statistics."""
    flt = cri.PodSandboxStatsFilter(id=id_filter or pod_id, label_selector=labels_from(labels))
    request = cri.ListPodSandboxStatsRequest(filter=flt)
    try:
        if output != "table":
            emit_message(
                cri.ListPodSandboxStatsResponse(stats=_pod_stats(session, request)), output
            )
            return
        _loop(watch, lambda: _pod_table(session, request, seconds))
    except KeyboardInterrupt:
        return


COMMANDS = [stats_command, statsp_command]
