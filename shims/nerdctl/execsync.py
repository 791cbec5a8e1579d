"""ExecSync: one ``nerdctl exec``, its exit code read from nerdctl's last stderr line.

nerdctl 1.x exits 1 whatever the command's code, and logs the real code
as its last stderr line; any other failure is nerdctl's own. A timed-out
``nerdctl exec`` dies without stopping the process it started, so the
processes exec'd meanwhile are killed first (host.exec_pids).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pycri.api import api_pb2 as cri
from pycri_shims.nerdctl.host import Cgroups, exec_pids, kill_pids
from pycri_shims.nerdctl.lookup import Lookup
from pycri_shims.nerdctl.runner import error_for

__all__ = ["exec_sync"]

_EXEC_EXIT = re.compile(rb'time="[^"]*" level=fatal msg="exec failed with exit code (\d+)"\n?\Z')


def exec_sync(
    lookup: Lookup,
    cgroups: Cgroups,
    container_id: str,
    cmd: Sequence[str],
    timeout: int,
) -> cri.ExecSyncResponse:
    # CRI's 0 means "no timeout"; every call is bounded, so 0 gets the call timeout
    limit = float(timeout) if timeout > 0 else lookup.options.timeout
    runc = lookup.runc(container_id)
    before = exec_pids(cgroups, container_id, runc)

    def kill_ours() -> None:
        # nerdctl exec dying does not stop the process it started: kill that first
        if runc is not None:
            kill_pids(exec_pids(cgroups, container_id, runc, exclude=before))

    argv = ["exec", container_id, *cmd]
    result = lookup.runner.run(argv, timeout=limit, check=False, on_timeout=kill_ours)
    stderr = result.err
    exit_code = 0
    if result.returncode != 0:
        found = _EXEC_EXIT.search(stderr)
        if found is None:
            raise error_for(argv, result.returncode, result.stderr)
        exit_code = int(found[1])
        stderr = stderr[: found.start()]
    return cri.ExecSyncResponse(stdout=result.out, stderr=stderr, exit_code=exit_code)
