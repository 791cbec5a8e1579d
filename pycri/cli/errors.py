"""How pycrictl reports failures: one line on stderr, exit 1 (2 for usage errors)."""

from __future__ import annotations

from typing import IO, Any

import click
import grpc

from pycri.errors import CRIError

__all__ = ["CLIError", "describe_rpc_error", "go_code"]


class CLIError(click.ClickException):
    """A failure to report as ``pycrictl: <message>`` with exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(click.style("pycrictl: ", fg="red") + self.format_message(), err=True, file=file)


def go_code(code: grpc.StatusCode) -> str:
    """A status code as Go's grpc prints it: ``NotFound``, ``DeadlineExceeded``."""
    if code == grpc.StatusCode.OK:
        return "OK"
    return "".join(part.capitalize() for part in code.name.split("_"))


def describe_rpc_error(err: CRIError) -> str:
    """``ListContainers failed: rpc error: code = Unavailable desc = ...``."""
    rpc = err.rpc or "CRI call"
    return f"{rpc} failed: rpc error: code = {go_code(err.code)} desc = {err.message}"
