"""shims/nerdctl/logs.py: what a log follower asks of the host while it waits.

Real processes and files under tmp_path stand for runc's state and a
container's init; no daemon is involved.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycri_shims.nerdctl import host
from pycri_shims.nerdctl.host import Cgroups, RuncState
from pycri_shims.nerdctl.logs import LogFollowers
from pycri_shims.nerdctl.options import NerdctlOptions

CONTAINER = "c" * 64


@pytest.fixture
def followers(tmp_path: Path) -> Iterator[LogFollowers]:
    options = NerdctlOptions(runc_root=str(tmp_path / "runc"), namespace="pycri")
    logs = LogFollowers(options, Cgroups(str(tmp_path / "cgroup"), options.namespace))
    yield logs
    logs.close()


def test_the_alive_check_reads_runc_state_once_then_only_proc(
    followers: LogFollowers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runc's state.json is kilobytes of JSON: read on every check of 220 followers,
    it cost an idle server a tenth of a CPU."""
    loads: list[str] = []
    load = RuncState.load

    def counted(cls: type[RuncState], root: str, namespace: str, cid: str) -> RuncState | None:
        loads.append(cid)
        return load(root, namespace, cid)

    monkeypatch.setattr(RuncState, "load", classmethod(counted))
    init = subprocess.Popen(["sleep", "60"])
    try:
        alive = followers.alive_check(CONTAINER, "")
        assert alive() is False  # no task yet, no cgroup: nothing runs
        state = tmp_path / "runc" / "pycri" / CONTAINER / "state.json"
        state.parent.mkdir(parents=True)
        state.write_text(
            json.dumps(
                {
                    "created": "2026-12-04T01:00:00.000000001Z",
                    "init_process_pid": init.pid,
                    "init_process_start": host._start_ticks(init.pid),
                    "config": {"padding": "x" * 4096},
                }
            )
        )
        assert [alive() for _ in range(5)] == [True] * 5
        assert loads == [CONTAINER, CONTAINER]  # once before the task, once after
        init.kill()
        init.wait()
        assert alive() is False
        assert len(loads) == 2
    finally:
        init.kill()
        init.wait()
