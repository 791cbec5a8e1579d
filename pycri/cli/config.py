"""crictl's client config file (``/etc/crictl.yaml``) and the ``config`` command."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click
import yaml

from pycri.cli.errors import CLIError
from pycri.cli.output import echo, render_table
from pycri.cli.units import parse_duration

__all__ = ["DEFAULT_CONFIG_PATH", "KEYS", "ConfigError", "CrictlConfig", "config_command"]

DEFAULT_CONFIG_PATH = "/etc/crictl.yaml"
KEYS = (
    "runtime-endpoint",
    "image-endpoint",
    "timeout",
    "debug",
    "pull-image-on-create",
    "disable-pull-on-run",
)
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class ConfigError(CLIError):
    """The config file or a value for it is invalid."""


@dataclass
class CrictlConfig:
    """The six options crictl's config file knows (names with ``-`` in the file)."""

    runtime_endpoint: str = ""
    image_endpoint: str = ""
    timeout: int = 0  # seconds; 0 means crictl's default (2s)
    debug: bool = False
    pull_image_on_create: bool = False
    disable_pull_on_run: bool = False

    @classmethod
    def read(cls, path: Path) -> CrictlConfig:
        """Parse ``path``; a missing file is an empty config."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls()
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must be a mapping of {', '.join(KEYS)}")
        config = cls()
        for key, value in data.items():
            try:
                config.set(str(key), value)
            except ConfigError as err:
                raise ConfigError(f"config file {path}: {err.message}") from None
        return config

    def get(self, key: str) -> str:
        """The value as crictl prints it (``config --get``)."""
        value = getattr(self, _attr(key))
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` from a YAML or command-line value, validating it."""
        attr = _attr(key)
        if attr in ("runtime_endpoint", "image_endpoint"):
            setattr(self, attr, "" if value is None else str(value))
        elif attr == "timeout":
            setattr(self, attr, _parse_timeout(key, value))
        else:
            setattr(self, attr, _parse_bool(key, value))

    def write(self, path: Path) -> None:
        """Write every option, keeping the file's other lines and comments."""
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for key in KEYS:
            entry = f"{key}: {_scalar(self.get(key), key)}"
            pattern = re.compile(rf"^{re.escape(key)}\s*:")
            hits = [i for i, line in enumerate(lines) if pattern.match(line)]
            for index in hits:
                lines[index] = entry
            if not hits:
                lines.append(entry)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def _attr(key: str) -> str:
    if key not in KEYS:
        raise ConfigError(f"no configuration option named {key} (one of: {', '.join(KEYS)})")
    attr = key.replace("-", "_")
    assert attr in {f.name for f in fields(CrictlConfig)}
    return attr


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value)
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"parse {key} value '{text}': use true or false")


def _parse_timeout(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value))
    except ValueError:
        pass
    try:
        return round(parse_duration(str(value)))
    except ValueError:
        raise ConfigError(f"parse {key} value '{value}': use seconds, e.g. 10") from None


def _scalar(text: str, key: str) -> str:
    if key not in ("runtime-endpoint", "image-endpoint"):
        return text
    if text and yaml.safe_load(text) == text and ": " not in text and "#" not in text:
        return text
    return json.dumps(text)


@click.command("config")
@click.option("--get", "get_key", metavar="KEY", help="Show the option value.")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set options (repeatable, or comma separated: opt1=val1,opt2=val2).",
)
@click.option("--list", "list_all", is_flag=True, help="Show all option values.")
@click.argument("args", nargs=-1)
@click.pass_context
def config_command(
    ctx: click.Context,
    get_key: str | None,
    settings: tuple[str, ...],
    list_all: bool,
    args: tuple[str, ...],
) -> None:
    """Get, set and list crictl configuration options.

    \b
    Options: runtime-endpoint, image-endpoint, timeout, debug,
    pull-image-on-create, disable-pull-on-run. The file is the global
    --config (default /etc/crictl.yaml). `config KEY VALUE` also sets.
    """
    path = Path(ctx.find_root().params.get("config") or DEFAULT_CONFIG_PATH)
    config = CrictlConfig.read(path)
    if get_key is not None:
        echo(config.get(get_key))
        return
    if list_all:
        rows = [["KEY", "VALUE"], *([key, config.get(key)] for key in KEYS)]
        echo(render_table(rows))
        return
    if settings:
        for setting in settings:
            for option in setting.split(","):
                key, sep, value = option.partition("=")
                if not sep or "=" in value:
                    raise ConfigError(f"incorrectly specified option: {setting} (use key=value)")
                config.set(key, value)
    elif args:
        if len(args) != 2:
            raise click.UsageError(
                "use `config KEY VALUE`, `config --set KEY=VALUE` or --get/--list"
            )
        config.set(args[0], args[1])
    else:
        click.echo(ctx.get_help())
        return
    try:
        config.write(path)
    except OSError as err:
        raise ConfigError(f"cannot write config file {path}: {err.strerror}") from None
