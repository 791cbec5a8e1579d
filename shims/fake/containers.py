"""Containers of the fake runtime: CreateContainer & co., each a simulated process.

StartContainer runs the container's argv as a
:class:`~pycri_shims.fake.processes.SimulatedProcess` writing through a
:class:`~pycri_shims.fake.interactive.Console` (its CRI log, attached
clients); the exit callback records how it ended and publishes the
CONTAINER_STOPPED event nobody asked for (a crash, a command that ended).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable

from pycri.api import api_pb2 as cri
from pycri.core.images import is_image_id
from pycri.core.logs import CRILogWriter
from pycri.errors import FailedPreconditionError, InternalError, InvalidArgumentError
from pycri_shims.fake.environment import process_context
from pycri_shims.fake.image_volumes import with_image_refs
from pycri_shims.fake.images import FakeImages
from pycri_shims.fake.interactive import Console
from pycri_shims.fake.processes import KILL_WAIT, ProcessResult, SimulatedProcess
from pycri_shims.fake.sh.commands import is_runnable
from pycri_shims.fake.state import ContainerRecord
from pycri_shims.fake.store import FakeStore, created_at

__all__ = ["Containers"]

log = logging.getLogger(__name__)


def _discard(data: bytes) -> None:
    """Output of a container without a log path."""


class Containers:
    """The containers of one fake runtime; ``emit`` publishes a container event."""

    def __init__(
        self,
        store: FakeStore,
        images: FakeImages,
        emit: Callable[[cri.ContainerEventResponse], None],
    ) -> None:
        self._store = store
        self._images = images
        self._emit = emit

    def create(self, pod_id: str, config: cri.ContainerConfig) -> str:
        store, find = self._store, self._images.find_for_container
        with store.lock:
            store.check_open()
            sandbox = store.sandbox(pod_id)
            if sandbox.state != cri.SANDBOX_READY:
                raise FailedPreconditionError(f"pod sandbox {pod_id[:13]} is not ready")
            image = find(config.image.image)
            argv = image.argv(config.command, config.args)
            if not argv:
                raise InvalidArgumentError(
                    f"no command specified: image {image.name} has no entrypoint or cmd "
                    "and the container config gives no command"
                )
            spec = cri.ImageSpec()
            spec.CopyFrom(config.image)
            if is_image_id(spec.image):
                spec.image = image.name  # show the name, as containerd does
            log_dir = sandbox.config.log_directory
            log_path = os.path.join(log_dir, config.log_path) if log_dir and config.log_path else ""
            record = ContainerRecord.create(
                pod_id,
                with_image_refs(config, find),
                spec,
                image.id,
                argv,
                log_path,
                process_context(sandbox, config, image, find),
                time.time_ns(),
            )
            store.containers[record.id] = record
            store.container_listing.changed()
        return record.id

    def start(self, container_id: str) -> None:
        store = self._store
        with store.lock:
            store.check_open()
            record = store.container(container_id)
            if record.state != cri.CONTAINER_CREATED:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} is {cri.ContainerState.Name(record.state)}: "
                    "only a created container can be started"
                )
            sandbox = store.sandbox(record.pod_id)
            if sandbox.state != cri.SANDBOX_READY:
                raise FailedPreconditionError(f"pod sandbox {record.pod_id[:13]} is not ready")
            if not is_runnable(record.argv[0]):
                # what runc reports; the container is left exited, as with containerd
                record.state = cri.CONTAINER_EXITED
                store.container_listing.changed()
                record.finished_at = time.time_ns()
                record.exit_code = 128
                record.reason = "StartError"
                record.message = (
                    "failed to create containerd task: failed to create shim task: OCI runtime "
                    "create failed: runc create failed: unable to start container process: "
                    f'exec: "{record.argv[0]}": executable file not found in $PATH'
                )
                raise InternalError(record.message)
            writer = None
            if record.log_path:
                try:
                    writer = CRILogWriter(record.log_path)
                except OSError as err:
                    raise InternalError(
                        f"cannot open the log file {record.log_path}: {err.strerror}"
                    ) from None
            console = Console(
                functools.partial(writer.write, "stdout") if writer else _discard,
                functools.partial(writer.write, "stderr") if writer else _discard,
                stdin=record.config.stdin,
                tty=record.config.tty,
                stdin_once=record.config.stdin_once,
            )
            context = record.context
            if console.terminal is not None:
                context = dataclasses.replace(context, terminal=console.terminal)
            process = SimulatedProcess(
                record.argv,
                context,
                stdout=console.stdout,
                stderr=console.stderr,
                # with stdin open and nobody attached, a reading shell waits for input
                stdin=console.process_stdin,
                name=f"pycri-fake-{container_id[:12]}",
                on_exit=functools.partial(self._on_exit, container_id),
            )
            if console.terminal is not None:
                console.terminal.interrupt = process.interrupt
            record.writer = writer
            record.console = console
            record.process = process
            record.state = cri.CONTAINER_RUNNING
            store.container_listing.changed()
            record.started_at = time.time_ns()
            # the exit callback takes the lock, so it sees the container running
            process.start()

    def _on_exit(self, container_id: str, result: ProcessResult) -> None:
        """Record how the main process ended (runs in the process's thread)."""
        store = self._store
        with store.lock:
            record = store.containers.get(container_id)
            if record is None:
                return
            record.state = cri.CONTAINER_EXITED
            store.container_listing.changed()
            record.finished_at = time.time_ns()
            record.exit_code = result.exit_code
            record.reason = result.reason or ("Completed" if result.exit_code == 0 else "Error")
            record.message = result.message
            if record.writer is not None:
                # under the lock, so that a concurrent ReopenContainerLog cannot revive it
                record.writer.close()
            if record.console is not None:
                record.console.exited.set()
            execs = list(record.execs)
            event = None
            if not record.stop_requested and not store.closed:
                # nobody asked for this exit, so core publishes no event for it
                sandbox = store.sandboxes.get(record.pod_id)
                event = cri.ContainerEventResponse(
                    container_id=container_id,
                    container_event_type=cri.CONTAINER_STOPPED_EVENT,
                    created_at=record.finished_at,
                    pod_sandbox_status=sandbox.to_status() if sandbox else None,
                    containers_statuses=[record.to_status()],
                )
        for process in execs:
            process.kill()  # execs die with the container's init process
        if event is not None:
            self._emit(event)

    def stop(self, container_id: str, timeout: int, *, requested: bool = True) -> None:
        """Stop the process: SIGTERM, SIGKILL after ``timeout`` s (0: at once).

        ``requested`` False: the pod's stop ends it, not a StopContainer (an event follows).
        """
        with self._store.lock:
            record = self._store.container(container_id)
            process = record.process
            if record.state != cri.CONTAINER_RUNNING or process is None:
                return
            record.stop_requested = record.stop_requested or requested
        if timeout > 0:
            process.terminate()
            if process.wait(timeout):
                process.join(KILL_WAIT)
                return
        # timeout 0 means kill now (SIGKILL), as containerd does
        process.kill()
        if not process.wait(KILL_WAIT):
            log.warning("simulated process of %s did not end after SIGKILL", container_id[:13])
        process.join(KILL_WAIT)

    def remove(self, container_id: str) -> None:
        store = self._store
        with store.lock:
            record = store.container(container_id)
            if record.state == cri.CONTAINER_RUNNING:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} is running: stop it before removing it"
                )
            del store.containers[container_id]
            store.container_listing.changed()
            writer, process, execs = record.writer, record.process, list(record.execs)
        for exec_process in execs:
            exec_process.kill()
        if writer is not None:
            writer.close()
        if process is not None:
            process.join(KILL_WAIT)

    def list(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        store = self._store
        with store.lock:
            if not hint:
                return store.container_listing.get(
                    lambda: [
                        r.to_container() for r in sorted(store.containers.values(), key=created_at)
                    ]
                )
            records = sorted(store.containers.values(), key=created_at)
            return [
                r.to_container()
                for r in records
                if r.id.startswith(hint.id) and r.pod_id.startswith(hint.pod_sandbox_id)
            ]

    def status(
        self, container_id: str, verbose: bool
    ) -> tuple[cri.ContainerStatus, dict[str, str]]:
        with self._store.lock:
            record = self._store.container(container_id)
            return record.to_status(), record.info() if verbose else {}

    def reopen_log(self, container_id: str) -> None:
        with self._store.lock:
            record = self._store.container(container_id)
            if record.state != cri.CONTAINER_RUNNING:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} is not running: its log cannot be reopened"
                )
            if record.writer is not None:
                try:
                    record.writer.reopen()
                except OSError as err:
                    raise InternalError(
                        f"cannot reopen the log file {record.log_path}: {err.strerror}"
                    ) from None

    def update_resources(
        self, container_id: str, linux: cri.LinuxContainerResources | None
    ) -> None:
        with self._store.lock:
            record = self._store.container(container_id)
            if record.state == cri.CONTAINER_EXITED:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} has exited: its resources cannot be updated"
                )
            if linux is not None:
                resources = cri.LinuxContainerResources()
                resources.CopyFrom(linux)
                record.resources = resources

    def crash(self, container_id: str, exit_code: int, reason: str, message: str) -> None:
        """End a running container's process as if killed (FakeShim.crash)."""
        with self._store.lock:
            record = self._store.container(container_id)
            process = record.process
            if record.state != cri.CONTAINER_RUNNING or process is None:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} is not running: there is nothing to crash"
                )
        process.crash(exit_code, reason, message)
        process.wait(KILL_WAIT)
        process.join(KILL_WAIT)

    def close(self) -> None:
        """Close the runtime: kill every simulated process, wait for it, close the logs."""
        store = self._store
        with store.lock:
            if store.closed:
                return
            store.closed = True
            processes = [
                process
                for record in store.containers.values()
                for process in (record.process, *record.execs)
                if process is not None
            ]
        for process in processes:
            process.kill()
        for process in processes:
            process.wait(KILL_WAIT)
            process.join(KILL_WAIT)
        with store.lock:
            writers = [r.writer for r in store.containers.values() if r.writer is not None]
        for writer in writers:
            writer.close()
