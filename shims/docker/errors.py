"""The one place where Docker SDK, requests and socket errors become pycri errors."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import docker.errors
import requests.exceptions
import urllib3.exceptions

from pycri.errors import (
    AlreadyExistsError,
    CRIError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)

__all__ = ["docker_errors", "translate", "unreachable_message"]

_TIMEOUTS: tuple[type[BaseException], ...] = (
    requests.exceptions.Timeout,
    urllib3.exceptions.TimeoutError,
    socket.timeout,
)
_UNREACHABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    urllib3.exceptions.ProtocolError,
    ConnectionError,
    FileNotFoundError,
)


# Refusals of a request's value that dockerd 20.10 answers with 500, as if it had
# failed (seen at container start: tests/unit/test_docker_errors.py). Docker
# classifies most refusals itself (400); an OCI runtime failure stays a failure.
_REFUSED_500 = re.compile(
    r"^unable to find (user|group) "
    r"|^error gathering device information while adding custom device "
    r"|is mounted on .* but it is not a (shared|shared or slave) mount$"
    r"|: invalid argument$"
)
_RUNTIME_FAILURE = re.compile(r"failed to create shim task|OCI runtime|runc (create|run) failed")


def unreachable_message(base_url: str, cause: BaseException | None = None) -> str:
    """Say which daemon is down and what to do about it.

    The word "connect" is avoided on purpose: pycri's client rewrites
    UNAVAILABLE errors whose details contain it into "cannot reach the CRI
    endpoint", which would blame pycri-server instead of dockerd.
    """
    why = _why(cause)
    return (
        f"the Docker daemon at {base_url} is not reachable{why}; start it "
        "(e.g. `systemctl start docker`) or point the docker shim at a running daemon "
        "with --shim-option docker_host=unix:///path/to/docker.sock"
    )


def _why(cause: BaseException | None) -> str:
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, FileNotFoundError):
            return " (its socket does not exist)"
        if isinstance(cause, ConnectionRefusedError):
            return " (nothing is listening on its socket)"
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return " (it dropped the request)"
        nested = cause.args[-1] if cause.args else None
        cause = (
            nested if isinstance(nested, BaseException) else (cause.__cause__ or cause.__context__)
        )
    return ""


def translate(err: BaseException, what: str, base_url: str) -> CRIError | None:
    """The pycri error for a failed Docker call (None: not a Docker error, a bug)."""
    if isinstance(err, CRIError):
        return err
    if isinstance(err, docker.errors.NotFound):
        return NotFoundError(f"{what}: {_explanation(err)}")
    if isinstance(err, docker.errors.APIError):
        return _api_error(err, what)
    if isinstance(err, _TIMEOUTS) or _caused_by_timeout(err):
        return DeadlineExceededError(
            f"{what}: the Docker daemon at {base_url} did not answer in time"
        )
    if isinstance(err, _UNREACHABLE):
        return UnavailableError(f"{what}: {unreachable_message(base_url, err)}")
    if isinstance(err, docker.errors.DockerException):
        # DockerClient(version="auto") wraps a dead socket in a bare DockerException.
        text = str(err)
        if "Error while fetching server API version" in text:
            return UnavailableError(f"{what}: {unreachable_message(base_url, err.__context__)}")
        return InternalError(f"{what}: {text}")
    return None


def _caused_by_timeout(err: BaseException) -> bool:
    # requests reports a read timeout inside a streamed body as ConnectionError(ReadTimeoutError)
    return any(isinstance(arg, _TIMEOUTS) for arg in getattr(err, "args", ()))


def _explanation(err: docker.errors.APIError) -> str:
    return str(err.explanation or err)


def _api_error(err: docker.errors.APIError, what: str) -> CRIError:
    status = err.status_code or 0
    text = _explanation(err)
    if status == 409:
        if "already in use" in text:
            return AlreadyExistsError(f"{what}: {text}")
        return FailedPreconditionError(f"{what}: {text}")
    if status == 400:
        return InvalidArgumentError(f"{what}: {text}")
    if status == 500 and _REFUSED_500.search(text) and not _RUNTIME_FAILURE.search(text):
        return InvalidArgumentError(f"{what}: docker refused it: {text}")
    return InternalError(f"{what}: docker answered {status}: {text}")


@contextmanager
def docker_errors(
    what: str, base_url: str, on_unreachable: Callable[[], None] | None = None
) -> Iterator[None]:
    """Run Docker calls, raising pycri errors; ``on_unreachable`` runs when the daemon is gone."""
    try:
        yield
    except CRIError:
        raise
    except Exception as err:
        mapped = translate(err, what, base_url)
        if mapped is None:
            raise
        if isinstance(mapped, UnavailableError) and on_unreachable is not None:
            on_unreachable()
        raise mapped from err
