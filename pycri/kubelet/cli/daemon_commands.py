"""``serve``: the kubelet daemon; ``sync``: one pass of its loop, for cron or scripts."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from pycri.kubelet.cli.session import KubectlSession, KubeletCLIError, node_options

__all__ = ["COMMANDS"]

log = logging.getLogger("pycri.kubelet")


@click.command("serve")
@click.option(
    "--sync-period", type=float, default=1.0, show_default=True, help="Seconds between relists."
)
@click.option("--workers", type=int, default=16, show_default=True, help="Pods synced at once.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@node_options
def serve_command(
    session: KubectlSession, sync_period: float, workers: int, log_level: str
) -> None:
    """Run the kubelet: keep the pods of the manifest directory running."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = session.settings
    if not session.lock.acquire():
        raise KubeletCLIError(
            f"another pycri-kubelet daemon serves {settings.root_dir} "
            f"(it holds {settings.paths.lock_file})"
        )
    settings.manifest_dir.mkdir(parents=True, exist_ok=True)
    settings.save()
    session.workers, session.sync_period = workers, sync_period
    kubelet = session.kubelet
    session.client.wait_ready(timeout=settings.timeout)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "pycri-kubelet serving %s on %s as node %s (root %s, logs %s)",
        settings.manifest_dir,
        settings.endpoint,
        settings.node_name,
        settings.root_dir,
        settings.log_root,
    )
    kubelet.run_forever(stop)


@click.command("sync")
@node_options
def sync_command(session: KubectlSession) -> None:
    """One relist and sync of every pod (when no daemon serves this root)."""
    if not session.direct():
        raise KubeletCLIError(
            f"a pycri-kubelet daemon serves {session.settings.root_dir}: it syncs every second"
        )
    report = session.kubelet.sync_once()
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(
        f"synced {len(report.synced)} pod(s), removed {len(report.terminated)}, "
        f"{len(report.errors)} error(s)"
    )
    for uid, error in report.errors.items():
        click.echo(f"  {uid}: {error}", err=True)
    if report.errors:
        raise click.exceptions.Exit(1)


COMMANDS: list[click.Command] = [serve_command, sync_command]
