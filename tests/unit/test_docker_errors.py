"""dockerd's answers mapped to status codes, on messages dockerd 20.10 really sends."""

from __future__ import annotations

import docker.errors
import pytest
import requests

from pycri.errors import InternalError, InvalidArgumentError
from pycri_shims.docker.errors import translate


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("docker said no", response=response, explanation=explanation)


# answered 500 by dockerd 20.10 at container start, though each refuses a value of the request
REFUSED_500 = [
    # run_as_username absent from the image
    "unable to find user nosuchuser: no matching entries in passwd file",
    # a device that does not exist on the host
    'error gathering device information while adding custom device "/dev/nonexistent": '
    "no such file or directory",
    # bidirectional propagation of a path on a private mount
    "path /tmp/x is mounted on / but it is not a shared mount",
    # cpu_shares -3
    "shares: invalid argument",
]

FAILED_500 = [
    # --sysctl net.ipv4.ip_forward=x: runc fails at start, as containerd's CRI reports it
    "failed to create shim task: OCI runtime create failed: runc create failed: unable to start "
    "container process: error during container init: write /proc/sys/net/ipv4/ip_forward: "
    "invalid argument: unknown",
    # a bind mount onto /proc
    "failed to create shim task: OCI runtime create failed: runc create failed: unable to start "
    'container process: error during container init: error mounting "/tmp/m" to rootfs at '
    '"/proc": "/var/lib/docker/overlay2/d1b9/merged/proc" cannot be mounted because it is not '
    "of type proc: unknown",
]


@pytest.mark.parametrize("text", REFUSED_500)
def test_a_refusal_dockerd_answers_with_500_is_invalid_argument(text: str) -> None:
    err = translate(api_error(500, text), "starting container abc", "unix:///x")
    assert isinstance(err, InvalidArgumentError), err
    assert text in err.message


@pytest.mark.parametrize("text", FAILED_500)
def test_a_failure_dockerd_answers_with_500_stays_internal(text: str) -> None:
    err = translate(api_error(500, text), "starting container abc", "unix:///x")
    assert isinstance(err, InternalError), err


def test_dockerds_own_400_is_invalid_argument() -> None:
    err = translate(api_error(400, "Minimum memory limit allowed is 6MB"), "creating x", "u")
    assert isinstance(err, InvalidArgumentError)
    assert "Minimum memory limit allowed is 6MB" in err.message
