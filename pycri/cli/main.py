"""``pycrictl``: crictl's commands, flags, config file and output, for any CRI endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import grpc
from click.core import ParameterSource

from pycri import __version__
from pycri.cli import (
    completion,
    containers,
    execs,
    images,
    info,
    lifecycle,
    logs,
    metrics,
    pods,
    stats,
)
from pycri.cli import config as cfg
from pycri.cli.errors import CLIError, describe_rpc_error
from pycri.cli.session import CrictlSession, CrictlSettings
from pycri.cli.units import parse_duration
from pycri.errors import CRIError, UnavailableError, error_for_code

__all__ = ["cli", "main"]

_ALIASES = {"image": "images", "img": "images", "event": "events"}
_NO_CONFIG = {"config", "completion"}


class CrictlGroup(click.Group):
    """A click Group with crictl's aliases and one-line RPC errors."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, _ALIASES.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else None), cmd, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CRIError as err:
            raise CLIError(_explain(ctx, err)) from None
        except grpc.RpcError as err:  # a stray one from a stream
            code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
            details = err.details() if hasattr(err, "details") else str(err)
            raise CLIError(_explain(ctx, error_for_code(code, details or ""))) from None


def _explain(ctx: click.Context, err: CRIError) -> str:
    message = describe_rpc_error(err)
    session = ctx.find_object(CrictlSession)
    if isinstance(err, UnavailableError) and session is not None and session.where():
        message += f" [endpoint set by {session.endpoint_source}]"
    return message


def _source(ctx: click.Context, name: str, flag: str, env: str) -> str | None:
    origin = ctx.get_parameter_source(name)
    if origin == ParameterSource.COMMANDLINE:
        return flag
    if origin == ParameterSource.ENVIRONMENT:
        return f"${env}"
    return None


def _endpoint(
    ctx: click.Context, name: str, env: str, value: str | None, from_file: str, path: Path
) -> tuple[str, str]:
    """An endpoint and where it came from: flag or environment, else the config file."""
    source = _source(ctx, name, "--" + name.replace("_", "-"), env)
    if source and value:
        return value, source
    if from_file:
        return from_file, f"{name.replace('_', '-')} in {path}"
    return "", ""


def _settings(
    ctx: click.Context,
    runtime_endpoint: str | None,
    image_endpoint: str | None,
    timeout: str,
    config_path: str,
    debug: bool,
) -> CrictlSettings:
    path = Path(config_path)
    file_config = cfg.CrictlConfig()
    if ctx.invoked_subcommand not in _NO_CONFIG:
        config_source = _source(ctx, "config", "--config", "CRI_CONFIG_FILE")
        if config_source and not path.exists():
            raise CLIError(f"config file {path} (from {config_source}) does not exist")
        file_config = cfg.CrictlConfig.read(path)
    settings = CrictlSettings(
        config_path=path,
        debug=debug or file_config.debug,
        pull_image_on_create=file_config.pull_image_on_create,
        disable_pull_on_run=file_config.disable_pull_on_run,
    )
    settings.runtime_endpoint, settings.runtime_source = _endpoint(
        ctx, "runtime_endpoint", "CONTAINER_RUNTIME_ENDPOINT", runtime_endpoint,
        file_config.runtime_endpoint, path,
    )  # fmt: skip
    settings.image_endpoint, settings.image_source = _endpoint(
        ctx, "image_endpoint", "IMAGE_SERVICE_ENDPOINT", image_endpoint,
        file_config.image_endpoint, path,
    )  # fmt: skip
    try:
        seconds = parse_duration(timeout)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx=ctx, param_hint="'-t' / '--timeout'") from None
    if ctx.get_parameter_source("timeout") == ParameterSource.COMMANDLINE and seconds > 0:
        settings.timeout = seconds
    elif file_config.timeout > 0:
        settings.timeout = float(file_config.timeout)
    return settings


@click.group(cls=CrictlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-r",
    "--runtime-endpoint",
    envvar="CONTAINER_RUNTIME_ENDPOINT",
    help="Endpoint of the CRI runtime service (default: the first of containerd, CRI-O, "
    "cri-dockerd and pycri-server's sockets that answers) [$CONTAINER_RUNTIME_ENDPOINT].",
)
@click.option(
    "-i",
    "--image-endpoint",
    envvar="IMAGE_SERVICE_ENDPOINT",
    help="Endpoint of the CRI image service (default: the runtime endpoint) "
    "[$IMAGE_SERVICE_ENDPOINT].",
)
@click.option(
    "-t",
    "--timeout",
    default="2s",
    show_default=True,
    help="Timeout of connecting to the server and of each call (e.g. 2s, 20s, 1m); "
    "0 or less means the default.",
)
@click.option(
    "-c",
    "--config",
    envvar="CRI_CONFIG_FILE",
    default=cfg.DEFAULT_CONFIG_PATH,
    show_default=True,
    help="Location of the client config file (crictl.yaml format) [$CRI_CONFIG_FILE].",
)
@click.option("-D", "--debug", is_flag=True, help="Enable debug output.")
@click.version_option(__version__, "-v", "--version", prog_name="pycrictl")
@click.pass_context
def cli(
    ctx: click.Context,
    runtime_endpoint: str | None,
    image_endpoint: str | None,
    timeout: str,
    config: str,
    debug: bool,
) -> None:
    """pycrictl: a crictl-compatible client for any CRI runtime."""
    session = CrictlSession(
        _settings(ctx, runtime_endpoint, image_endpoint, timeout, config, debug)
    )
    ctx.obj = session
    ctx.call_on_close(session.close)


for _module in (info, pods, containers, lifecycle, execs, logs, images, stats, metrics, completion):
    for _command in _module.COMMANDS:
        cli.add_command(_command)
cli.add_command(cfg.config_command)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="pycrictl")
