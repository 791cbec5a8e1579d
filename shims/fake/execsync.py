"""ExecSync in the fake: the command as a simulated process in the container, output captured."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pycri.api import api_pb2 as cri
from pycri.errors import DeadlineExceededError, FailedPreconditionError, InvalidArgumentError
from pycri_shims.fake.processes import KILL_WAIT, OutputCapture, SimulatedProcess
from pycri_shims.fake.state import ContainerRecord
from pycri_shims.fake.store import FakeStore

__all__ = ["exec_slot", "exec_sync"]


def exec_slot(store: FakeStore, container_id: str) -> tuple[ContainerRecord, int]:
    """The running container an exec joins, and the pid it gets (under the lock)."""
    store.check_open()
    record = store.container(container_id)
    if record.state != cri.CONTAINER_RUNNING:
        raise FailedPreconditionError(
            f"container {container_id[:13]} is not running: cannot exec in it"
        )
    pid = record.next_pid
    record.next_pid += 1
    return record, pid


def exec_sync(
    store: FakeStore, container_id: str, cmd: Sequence[str], timeout: int
) -> cri.ExecSyncResponse:
    """Run ``cmd`` in the container; killed (DEADLINE_EXCEEDED) after ``timeout`` s if > 0."""
    if not cmd:
        raise InvalidArgumentError("cmd is required")
    out, err = OutputCapture(), OutputCapture()
    with store.lock:
        record, pid = exec_slot(store, container_id)
        process = SimulatedProcess(
            list(cmd),
            record.context.for_exec(pid),
            stdout=out.write,
            stderr=err.write,
            name=f"pycri-fake-exec-{container_id[:12]}",
        )
        # killed with the container's init process
        record.execs.add(process)
        process.start()
    try:
        finished = process.wait(timeout if timeout > 0 else None)
        if not finished:
            process.kill()
            process.wait(KILL_WAIT)
    finally:
        process.join(KILL_WAIT)
        with store.lock:
            record.execs.discard(process)
    if not finished:
        raise DeadlineExceededError(
            f"command {shlex.join(cmd)!r} timed out after {timeout}s (it was killed)"
        )
    assert process.result is not None
    return cri.ExecSyncResponse(
        stdout=out.value, stderr=err.value, exit_code=process.result.exit_code
    )
