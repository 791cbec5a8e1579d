"""nerdctl's failures mapped to status codes, on the messages nerdctl 1.7.7 really prints.

Every stderr line here was captured from ``nerdctl create``/``run`` with a
bad value (the command is in the comment), so the mapping is tested on
what the engine says rather than on what we imagine it says.
"""

from __future__ import annotations

import pytest

from pycri.errors import CRIError, InvalidArgumentError, NotFoundError
from pycri_shims.nerdctl.runner import error_for

_TIME = 'time="2026-12-03T09:32:02Z" level=fatal msg='

REFUSED = [
    # --memory -5
    r'"failed to parse memory bytes \"-5\": invalid size: \'-5\'"',
    # --cpu-shares -3
    r'"invalid argument \"-3\" for \"--cpu-shares\" flag: strconv.ParseUint: parsing \"-3\": '
    r'invalid syntax"',
    # --oom-score-adj 5000
    '"invalid value 5000, range for oom score adj is [-1000, 1000]"',
    # --cgroup-conf on a cgroup v1 host
    '"cannot use --cgroup-conf without cgroup v2"',
    # --user nosuchuser (not in the image's /etc/passwd)
    '"mount callback failed on /tmp/containerd-mount3737259296: no users found"',
    # --security-opt seccomp=/nonexistent/prof.json
    r'"cannot load seccomp profile \"/nonexistent/prof.json\": open /nonexistent/prof.json: '
    r'no such file or directory"',
    # --device /dev/nonexistent:/dev/x:rwm
    r'"failed to parse device \"/dev/nonexistent:/dev/x:rwm\": changing the path inside the '
    r'container is not supported yet"',
    # --mount ...,bind-propagation=rshared of a path on a private mount
    r'"failed to parse volume options (\"bind\", \"/tmp/x\", \"rshared,rbind\"): mountpoint '
    r'\"/\" doesn\'t have optional field neither of [shared:]"',
    # --name bad!name
    r'"invalid name \"bad!name\": identifier \"bad!name\" must match '
    r'^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument"',
    # run -p not-an-ip:38001:80
    '"failed to load networking flags: invalid ip address: not-an-ip"',
]

FAILED = [
    # run --sysctl net.bogus.thing=1: runc fails; containerd's CRI answers UNKNOWN too
    '"failed to create shim task: OCI runtime create failed: runc create failed: unable to '
    "start container process: error during container init: open /proc/sys/net/bogus/thing: "
    'no such file or directory: unknown"',
    # run --sysctl net.ipv4.ip_forward=x: the kernel's EINVAL, reported by runc
    '"failed to create shim task: OCI runtime create failed: runc create failed: unable to '
    "start container process: error during container init: write /proc/sys/net/ipv4/ip_forward: "
    'invalid argument: unknown"',
    # run --entrypoint /no/such/binary
    r'"failed to create shim task: OCI runtime create failed: runc create failed: unable to '
    r"start container process: exec: \"/no/such/binary\": stat /no/such/binary: no such file "
    r'or directory: unknown"',
    # not an argument: the engine's own state
    '"failed to parse the containerd version \\"x\\""',
    # a flag the shim got wrong is pycri's bug, not the client's argument
    '"unknown flag: --bogus"',
]


@pytest.mark.parametrize("msg", REFUSED)
def test_a_refused_argument_is_invalid_argument_with_nerdctls_message(msg: str) -> None:
    err = error_for(["create", "--name", "x"], 1, f"{_TIME}{msg}\n")
    assert isinstance(err, InvalidArgumentError), err
    # the engine's words reach the client
    assert msg.strip('"')[:20].replace("\\", "") in err.message.replace("\\", "")


@pytest.mark.parametrize("msg", FAILED)
def test_an_engine_failure_is_not_invalid_argument(msg: str) -> None:
    err = error_for(["run", "-d", "--name", "x"], 1, f"{_TIME}{msg}\n")
    assert type(err) is CRIError, err
    assert not isinstance(err, InvalidArgumentError | NotFoundError)
