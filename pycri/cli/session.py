"""Which endpoint to talk to, how long to wait, and the client built from that.

Flags and environment variables win over the config file, which wins over
crictl's list of default sockets; every choice remembers where it came
from so that a failure can say what was tried and how to change it.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from pycri.cli.errors import CLIError
from pycri.client import CRIClient
from pycri.endpoint import default_socket_path, parse_endpoint
from pycri.errors import CRIError

__all__ = ["DEFAULT_ENDPOINTS", "DEFAULT_TIMEOUT", "CrictlSession", "CrictlSettings"]

DEFAULT_TIMEOUT = 2.0
DEFAULT_ENDPOINTS = (
    "unix:///run/containerd/containerd.sock",
    "unix:///run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
    f"unix://{default_socket_path()}",
)
HOW_TO_SET = (
    "Set one with -r/--runtime-endpoint, the CONTAINER_RUNTIME_ENDPOINT environment "
    "variable, or `pycrictl config --set runtime-endpoint=unix:///path/to.sock`."
)

Resp = TypeVar("Resp", bound=Message)


@dataclass
class CrictlSettings:
    """pycrictl's global options, after flags, environment and config file are merged."""

    runtime_endpoint: str = ""
    runtime_source: str = ""
    image_endpoint: str = ""
    image_source: str = ""
    timeout: float = DEFAULT_TIMEOUT
    debug: bool = False
    pull_image_on_create: bool = False
    disable_pull_on_run: bool = False
    config_path: Path = Path("/etc/crictl.yaml")


def socket_problem(endpoint: str) -> str | None:
    """Why a unix endpoint cannot work (missing, not a socket, no access), else None."""
    parsed = parse_endpoint(endpoint)
    if parsed.scheme != "unix":
        return None
    try:
        mode = os.stat(parsed.path).st_mode
    except FileNotFoundError:
        return f"{parsed.path} does not exist"
    except PermissionError:
        return f"permission denied on {parsed.path} (try as root)"
    if not stat.S_ISSOCK(mode):
        return f"{parsed.path} is not a socket"
    if not os.access(parsed.path, os.R_OK | os.W_OK):
        return f"permission denied on {parsed.path} (run as root or join the socket's group)"
    return None


class CrictlSession:
    """The lazily connected client of one pycrictl invocation.

    pycri-kubelet's counterpart is :class:`pycri.kubelet.cli.session.KubectlSession`.
    """

    def __init__(self, settings: CrictlSettings) -> None:
        self.settings = settings
        self._client: CRIClient | None = None
        self.endpoint = ""
        self.endpoint_source = ""

    def debug(self, message: str) -> None:
        if self.settings.debug:
            print(f"DEBU {message}", file=sys.stderr)

    @property
    def client(self) -> CRIClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def where(self) -> str:
        """``unix:///x.sock (from --runtime-endpoint)`` for error messages."""
        if not self.endpoint:
            return ""
        return f"{self.endpoint} (from {self.endpoint_source})"

    def rpc(
        self, call: Callable[..., Resp], request: Message, *, timeout: float | None = -1.0
    ) -> Resp:
        """Make one call, logging request and response with -D."""
        name = type(request).__name__
        self.debug(f"{name}: {_compact(request)}")
        kwargs: dict[str, Any] = {} if timeout == -1.0 else {"timeout": timeout}
        response = call(request, **kwargs)
        self.debug(f"{type(response).__name__}: {_compact(response)}")
        return response

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _connect(self) -> CRIClient:
        settings = self.settings
        if settings.runtime_endpoint:
            self.endpoint, self.endpoint_source = (
                settings.runtime_endpoint,
                settings.runtime_source,
            )
            self._check(settings.runtime_endpoint, settings.runtime_source, "runtime")
        else:
            self.endpoint = self._probe_defaults()
            self.endpoint_source = "default, as none was set"
        image = settings.image_endpoint or self.endpoint
        if settings.image_endpoint:
            self._check(settings.image_endpoint, settings.image_source, "image")
        self.debug(f"runtime endpoint {self.where()}, image endpoint {image}")
        return CRIClient(self.endpoint, image_endpoint=image, timeout=settings.timeout)

    def _check(self, endpoint: str, source: str, kind: str) -> None:
        try:
            problem = socket_problem(endpoint)
        except ValueError as err:
            raise CLIError(f"invalid {kind} endpoint {endpoint!r} (from {source}): {err}") from None
        if problem:
            raise CLIError(
                f"cannot connect to the {kind} endpoint {endpoint} (from {source}): {problem}. "
                f"Is the runtime running, and is this its socket? {HOW_TO_SET}"
            )

    def _probe_defaults(self) -> str:
        tried = []
        for endpoint in DEFAULT_ENDPOINTS:
            problem = socket_problem(endpoint)
            if problem is None:
                probe = CRIClient(endpoint, timeout=self.settings.timeout)
                try:
                    probe.wait_ready(timeout=self.settings.timeout)
                    self.debug(f"connected to the default endpoint {endpoint}")
                    return endpoint
                except CRIError:
                    problem = f"no answer within {self.settings.timeout:g}s"
                finally:
                    probe.close()
            tried.append(f"  {endpoint}: {problem}")
        raise CLIError(
            "no runtime endpoint is set, and none of the default endpoints answered:\n"
            + "\n".join(tried)
            + f"\n{HOW_TO_SET}"
        )


def _compact(msg: Message) -> str:
    return str(json_format.MessageToJson(msg, indent=None))
