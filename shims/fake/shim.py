"""FakeShim: an in-memory CRI runtime with simulated processes.

Pods, containers and images live in memory with the CRI's states, times,
exit codes and reasons; containers run a tiny shell in threads, so that
``echo hi`` logs ``hi`` and ``sleep 5`` takes five seconds. Tests steer it
through :attr:`FakeShim.faults`, :meth:`FakeShim.crash` and the
``network_ready`` / ``runtime_ready`` attributes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import operator
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

from pycri import __version__
from pycri.api import api_pb2 as cri
from pycri.core import metrics as core_metrics
from pycri.core.identity import resolve_identity
from pycri.core.images import (
    is_image_id,
    is_sandbox_image,
    normalize_reference,
    parse_reference,
)
from pycri.core.logs import CRILogWriter
from pycri.core.sandbox_resources import SandboxResources
from pycri.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from pycri.shim import PullProgress, Shim
from pycri.streaming.streams import PortConnection, StreamIO
from pycri_shims.fake.faults import FaultInjector
from pycri_shims.fake.images import (
    DEFAULT_PAUSE_IMAGE,
    DEFAULT_PRELOAD,
    FakeImage,
    ImageStore,
    image_config_for,
    image_files,
)
from pycri_shims.fake.metrics import pod_sandbox_metrics
from pycri_shims.fake.network import FakeNetwork
from pycri_shims.fake.processes import OutputCapture, ProcessResult, SimulatedProcess
from pycri_shims.fake.sh.commands import is_runnable
from pycri_shims.fake.sh.context import ProcessContext
from pycri_shims.fake.sh.filesystem import FakeFS
from pycri_shims.fake.state import ContainerRecord, IPAllocator, SandboxRecord
from pycri_shims.fake.stats import (
    CONTAINER_FS,
    IMAGE_FS,
    container_stats,
    filesystem_usage,
    pod_sandbox_stats,
)
from pycri_shims.fake.stats import writable_layer_bytes as _layer
from pycri_shims.fake.streaming import Console, forward_port, run_exec

__all__ = ["FakeShim"]

log = logging.getLogger(__name__)

DEFAULT_POD_CIDR = "10.88.0.0/16"
#: how long a killed simulated process may take to unwind (it is normally instant)
_KILL_WAIT = 5.0
_INODES_PER_IMAGE = 1_500
#: host files larger than this are not copied into a container's in-memory filesystem
_MAX_MOUNTED_FILE = 1024 * 1024
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _names(value: Iterable[str] | str | None) -> list[str]:
    """A list option given as an iterable or a comma-separated string."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def _flag(key: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"fake shim option {key}={value!r}: expected true or false")


def _mounted_files(mounts: Iterable[cri.Mount]) -> dict[str, bytes]:
    """Small regular host files under the mounts, so that ``cat`` in a container sees them."""
    files: dict[str, bytes] = {}
    for mount in mounts:
        if not mount.host_path:
            continue
        source = Path(mount.host_path)
        try:
            if source.is_file():
                candidates = [(source, mount.container_path)]
            elif source.is_dir():
                candidates = [
                    (entry, f"{mount.container_path.rstrip('/')}/{entry.name}")
                    for entry in sorted(source.iterdir())[:100]
                    if entry.is_file()
                ]
            else:
                continue
            for path, target in candidates:
                if path.stat().st_size <= _MAX_MOUNTED_FILE:
                    files[target] = path.read_bytes()
        except OSError:
            continue  # unreadable on this host: the container just does not see it
    return files


_created_at = operator.attrgetter("created_at")
Entry = TypeVar("Entry", cri.Container, cri.PodSandbox)


class _Listing(Generic[Entry]):
    """The complete list of one kind, kept until a change to what it shows.

    The shim calls :meth:`changed` (under its lock) whenever a record is
    added or removed, or its state changes: the state is the only field of
    a list entry that ever changes (``ContainerRecord.to_container``).
    """

    def __init__(self) -> None:
        self._generation = 0
        self._kept: tuple[int, list[Entry]] | None = None

    def changed(self) -> None:
        self._generation += 1

    def get(self, build: Callable[[], list[Entry]]) -> list[Entry]:
        kept = self._kept
        if kept is None or kept[0] != self._generation:
            kept = self._kept = (self._generation, build())
        return list(kept[1])


class FakeShim(Shim):
    """An in-memory runtime with full CRI semantics, for tests and demos."""

    name: ClassVar[str] = "fake"
    #: records hand out one list entry per state (ContainerRecord.to_container)
    stable_list_entries: ClassVar[bool] = True

    def __init__(
        self,
        preload: Iterable[str] | str = DEFAULT_PRELOAD,
        registry: Iterable[str] | str | None = None,
        *,
        pull_delay: float = 0.0,
        runtime_handlers: Iterable[str] | str = (),
        pod_cidr: str = DEFAULT_POD_CIDR,
        network_ready: bool = True,
        runtime_ready: bool = True,
        pause_image: str = DEFAULT_PAUSE_IMAGE,
    ) -> None:
        super().__init__()
        self.sandbox_resources = SandboxResources(None)  # in memory, as everything here
        if pull_delay < 0:
            raise ValueError("pull_delay must not be negative")
        self._lock = threading.RLock()
        self._closed = False
        self._sandboxes: dict[str, SandboxRecord] = {}
        self._containers: dict[str, ContainerRecord] = {}
        #: the complete lists, kept between changes (the kubelet relists every second)
        self._pod_listing: _Listing[cri.PodSandbox] = _Listing()
        self._container_listing: _Listing[cri.Container] = _Listing()
        self._ipam = IPAllocator(pod_cidr)
        #: the node's network namespace, shared by host-network pods
        self._host_network = FakeNetwork("host")
        self._images = ImageStore(None if registry is None else _names(registry))
        self._handlers = ["", *(h for h in _names(runtime_handlers) if h)]
        self.pull_delay = pull_delay
        #: the sandbox image: "pulled" by RunPodSandbox when missing, reported pinned
        self.pause_image = normalize_reference(pause_image)
        #: set False to report the NetworkReady / RuntimeReady condition as failing
        self.network_ready = network_ready
        self.runtime_ready = runtime_ready
        #: set False to play a runtime that cannot give SupplementalGroupsPolicy Strict
        self.strict_groups = True
        #: scripted failures and latency per RPC (applied in before_rpc)
        self.faults = FaultInjector()
        for ref in _names(preload):
            # preloaded images are already on the node: the registry is not asked
            self._images.add(normalize_reference(ref))

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Self:
        """Build from ``--shim-option`` strings: ``preload=a,b``, ``pull_delay=0.1``..."""
        kwargs: dict[str, Any] = {}
        for key, value in options.items():
            if key in ("preload", "registry", "runtime_handlers"):
                kwargs[key] = _names(value)
            elif key == "pull_delay":
                try:
                    kwargs[key] = float(value)
                except ValueError:
                    raise ValueError(
                        f"fake shim option pull_delay={value!r}: not a number"
                    ) from None
            elif key in ("network_ready", "runtime_ready"):
                kwargs[key] = _flag(key, value)
            elif key in ("pod_cidr", "pause_image"):
                kwargs[key] = value
            else:
                raise ValueError(
                    f"unknown fake shim option {key!r}; known: preload, registry, pull_delay, "
                    "runtime_handlers, pod_cidr, network_ready, runtime_ready, pause_image"
                )
        return cls(**kwargs)

    # -- plumbing ------------------------------------------------------------------

    def before_rpc(self, rpc: str) -> None:
        if self._closed:
            raise UnavailableError("the fake runtime has been closed")
        self.faults.apply(rpc)

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("the fake runtime has been closed")

    def _sandbox(self, pod_id: str) -> SandboxRecord:
        sandbox = self._sandboxes.get(pod_id)
        if sandbox is None:
            raise NotFoundError(f"pod sandbox {pod_id!r} not found")
        return sandbox

    def _container(self, container_id: str) -> ContainerRecord:
        record = self._containers.get(container_id)
        if record is None:
            raise NotFoundError(f"container {container_id!r} not found")
        return record

    def close(self) -> None:
        """Kill every simulated process, wait for its thread, close the logs."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            processes = [
                process
                for record in self._containers.values()
                for process in (record.process, *record.execs)
                if process is not None
            ]
        for process in processes:
            process.kill()
        for process in processes:
            process.wait(_KILL_WAIT)
            process.join(_KILL_WAIT)
        with self._lock:
            writers = [r.writer for r in self._containers.values() if r.writer is not None]
        for writer in writers:
            writer.close()

    # -- identity and health ---------------------------------------------------------

    def runtime_version(self) -> str:
        return f"fake {__version__}"

    def conditions(self) -> list[cri.RuntimeCondition]:
        runtime = cri.RuntimeCondition(type="RuntimeReady", status=self.runtime_ready)
        if not self.runtime_ready:
            runtime.reason = "RuntimeNotReady"
            runtime.message = "the fake runtime is marked not ready (runtime_ready = False)"
        network = cri.RuntimeCondition(type="NetworkReady", status=self.network_ready)
        if not self.network_ready:
            network.reason = "NetworkPluginNotReady"
            network.message = (
                "network plugin returns error: the fake network is marked not ready "
                "(network_ready = False)"
            )
        return [runtime, network]

    def info(self) -> dict[str, str]:
        with self._lock:
            details = {
                "shim": self.name,
                "podCIDR": str(self._ipam.network),
                "registry": sorted(self._images.registry) if self._images.registry else None,
                "pullDelay": self.pull_delay,
                "images": len(self._images.images()),
                "sandboxes": len(self._sandboxes),
                "containers": len(self._containers),
            }
        return {"config": json.dumps(details)}

    def runtime_handlers(self) -> list[str]:
        return list(self._handlers)

    def runtime_handler_features(self, handler: str) -> cri.RuntimeHandlerFeatures:
        # simulated: core checks the rules, the container records the mounts as asked
        return cri.RuntimeHandlerFeatures(recursive_read_only_mounts=handler in self._handlers)

    def supplemental_groups_policy(self, runtime_handler: str | None = None) -> bool:
        return self.strict_groups  # processes get core.identity's groups

    def update_runtime_config(self, config: cri.RuntimeConfig) -> None:
        cidr = config.network_config.pod_cidr
        if cidr:
            with self._lock:
                if cidr != str(self._ipam.network):
                    # new pods get addresses from the CIDR the kubelet hands out
                    self._ipam = IPAllocator(cidr)

    # -- pod sandboxes ----------------------------------------------------------------

    def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        with self._lock:
            self._check_open()
            if runtime_handler not in self._handlers:
                raise InvalidArgumentError(f"runtime handler {runtime_handler!r} is not configured")
            self._ensure_pause_image()
            host_network = config.linux.security_context.namespace_options.network == cri.NODE
            ip = "" if host_network else self._ipam.allocate()
            sandbox = SandboxRecord.create(config, runtime_handler, time.time_ns(), ip)
            name = f"{config.metadata.namespace}/{config.metadata.name}"
            sandbox.network = self._host_network if host_network else FakeNetwork(name)
            self._sandboxes[sandbox.id] = sandbox
            self._pod_listing.changed()
        return sandbox.id

    def _ensure_pause_image(self) -> None:
        """Pull the sandbox image when missing, as the engine shims do (under the lock)."""
        if self._images.find(self.pause_image) is not None:
            return
        try:
            self._images.check_pullable(self.pause_image)
        except NotFoundError as err:
            raise FailedPreconditionError(
                f"the sandbox image {self.pause_image} is not in the fake image store and "
                f"cannot be pulled ({err.message}); preload it or choose another with "
                "--shim-option pause_image=REF"
            ) from err
        self._images.add(self.pause_image)

    def stop_pod_sandbox(self, pod_id: str) -> None:
        with self._lock:
            sandbox = self._sandbox(pod_id)
            running = [
                c.id
                for c in self._containers.values()
                if c.pod_id == pod_id and c.state == cri.CONTAINER_RUNNING
            ]
        # core stops the containers first; used directly, the shim does it itself
        for container_id in running:
            self._stop(container_id, 0, requested=False)
        with self._lock:
            if sandbox.state == cri.SANDBOX_READY:
                sandbox.state = cri.SANDBOX_NOTREADY
                self._pod_listing.changed()
                sandbox.stopped_at = time.time_ns()
            network = None if sandbox.host_network else sandbox.network
        if network is not None:
            network.close()  # the namespace goes with the sandbox

    def remove_pod_sandbox(self, pod_id: str) -> None:
        self.stop_pod_sandbox(pod_id)
        with self._lock:
            sandbox = self._sandbox(pod_id)
            leftovers = [c.id for c in self._containers.values() if c.pod_id == pod_id]
        for container_id in leftovers:
            self.remove_container(container_id)
        with self._lock:
            if sandbox.ip:
                self._ipam.release(sandbox.ip)
            self._sandboxes.pop(pod_id, None)
            self._pod_listing.changed()

    def pod_sandbox_status(
        self, pod_id: str, verbose: bool
    ) -> tuple[cri.PodSandboxStatus, dict[str, str]]:
        with self._lock:
            sandbox = self._sandbox(pod_id)
            return sandbox.to_status(), sandbox.info(self.pause_image) if verbose else {}

    def list_pod_sandboxes(self, hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        with self._lock:
            if not hint:
                return self._pod_listing.get(
                    lambda: [s.to_pod() for s in sorted(self._sandboxes.values(), key=_created_at)]
                )
            sandboxes = sorted(self._sandboxes.values(), key=_created_at)
            return [s.to_pod() for s in sandboxes if s.id.startswith(hint.id)]

    # -- containers --------------------------------------------------------------------

    def _find_image(self, reference: str) -> FakeImage:
        try:
            ref = reference if is_image_id(reference) else normalize_reference(reference)
        except InvalidArgumentError:
            ref = reference
        image = self._images.find(ref)
        if image is None:
            raise NotFoundError(
                f"failed to get image {ref!r}: not found in the fake image store; pull it first"
            )
        return image

    def create_container(
        self,
        pod_id: str,
        config: cri.ContainerConfig,
        sandbox_config: cri.PodSandboxConfig,
    ) -> str:
        with self._lock:
            self._check_open()
            sandbox = self._sandbox(pod_id)
            if sandbox.state != cri.SANDBOX_READY:
                raise FailedPreconditionError(f"pod sandbox {pod_id[:13]} is not ready")
            image = self._find_image(config.image.image)
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
                self._with_image_refs(config),
                spec,
                image.id,
                argv,
                log_path,
                self._context(sandbox, config, image),
                time.time_ns(),
            )
            self._containers[record.id] = record
            self._container_listing.changed()
        return record.id

    def _with_image_refs(self, config: cri.ContainerConfig) -> cri.ContainerConfig:
        """``config`` with each image mount's image id, as ContainerStatus reports it."""
        if not any(m.HasField("image") for m in config.mounts):
            return config
        copy = cri.ContainerConfig()
        copy.CopyFrom(config)
        for mount in copy.mounts:
            if mount.HasField("image"):
                mount.image.image_ref = self._find_image(mount.image.image).id
        return copy

    def _context(
        self, sandbox: SandboxRecord, config: cri.ContainerConfig, image: FakeImage
    ) -> ProcessContext:
        """The environment, identity and files the container's processes see."""
        hostname = sandbox.hostname
        env = dict(image.config.env)
        env["HOSTNAME"] = hostname
        env.update((kv.key, kv.value) for kv in config.envs)
        env.setdefault("HOME", "/root")
        security = config.linux.security_context
        who = resolve_identity(security, image.config.passwd, image.config.group, image.config.user)
        working_dir = config.working_dir or image.config.working_dir or "/"
        dns = sandbox.config.dns_config
        files = {
            "/etc/passwd": image.config.passwd.encode(),
            "/etc/group": image.config.group.encode(),
            "/etc/hostname": f"{hostname}\n".encode(),
            "/etc/hosts": (
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                + (f"{sandbox.ip}\t{hostname}\n" if sandbox.ip else "")
            ).encode(),
        }
        if sandbox.config.HasField("dns_config"):
            lines = [f"search {' '.join(dns.searches)}"] if dns.searches else []
            lines += [f"nameserver {server}" for server in dns.servers]
            lines += [f"options {' '.join(dns.options)}"] if dns.options else []
            files["/etc/resolv.conf"] = "".join(f"{line}\n" for line in lines).encode()
        files.update(_mounted_files(config.mounts))
        mount_dirs = [m.container_path for m in config.mounts]
        volumes = self._image_volume_files(config)
        files.update(volumes)
        read_only = [m.container_path for m in config.mounts if m.HasField("image")]
        return ProcessContext(
            env=env,
            hostname=hostname,
            working_dir=working_dir,
            fs=FakeFS(files, dirs=[working_dir, *mount_dirs], read_only=read_only),
            pid=1,
            ip=sandbox.ip,
            uid=who.uid,
            gid=who.gid,
            groups=tuple(sorted(who.groups)),  # as the kernel keeps them
            net=sandbox.network,
        )

    def _image_volume_files(self, config: cri.ContainerConfig) -> dict[str, bytes]:
        """The files of the config's image mounts (core checked them), where they appear."""
        files: dict[str, bytes] = {}
        for index, mount in enumerate(config.mounts):
            if not mount.HasField("image"):
                continue
            tree = image_files(self._find_image(mount.image.image))
            sub = "/" + mount.image_sub_path if mount.image_sub_path else ""
            target = mount.container_path.rstrip("/")
            if sub in tree:  # a file: image volumes mount directories only (core's rule)
                raise InvalidArgumentError(
                    f"config.mounts[{index}]: image_sub_path {mount.image_sub_path!r} "
                    "is not a directory: image volumes mount directories only"
                )
            inside = {p: d for p, d in tree.items() if p.startswith(sub + "/")}
            if not inside:
                raise InvalidArgumentError(
                    f"config.mounts[{index}]: image_sub_path {mount.image_sub_path!r} "
                    "does not exist in the image"
                )
            files.update({target + p[len(sub) :]: d for p, d in inside.items()})
        return files

    def start_container(self, container_id: str) -> None:
        with self._lock:
            self._check_open()
            record = self._container(container_id)
            if record.state != cri.CONTAINER_CREATED:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} is {cri.ContainerState.Name(record.state)}: "
                    "only a created container can be started"
                )
            sandbox = self._sandbox(record.pod_id)
            if sandbox.state != cri.SANDBOX_READY:
                raise FailedPreconditionError(f"pod sandbox {record.pod_id[:13]} is not ready")
            if not is_runnable(record.argv[0]):
                # what runc reports; the container is left exited, as with containerd
                record.state = cri.CONTAINER_EXITED
                self._container_listing.changed()
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
            self._container_listing.changed()
            record.started_at = time.time_ns()
            # the exit callback takes the lock, so it sees the container running
            process.start()

    def _on_exit(self, container_id: str, result: ProcessResult) -> None:
        """Record how the main process ended (runs in the process's thread)."""
        with self._lock:
            record = self._containers.get(container_id)
            if record is None:
                return
            record.state = cri.CONTAINER_EXITED
            self._container_listing.changed()
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
            if not record.stop_requested and not self._closed:
                # nobody asked for this exit, so core publishes no event for it
                sandbox = self._sandboxes.get(record.pod_id)
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
            self.emit_event(event)

    def _stop(self, container_id: str, timeout: int, *, requested: bool) -> None:
        with self._lock:
            record = self._container(container_id)
            process = record.process
            if record.state != cri.CONTAINER_RUNNING or process is None:
                return
            record.stop_requested = record.stop_requested or requested
        if timeout > 0:
            process.terminate()
            if process.wait(timeout):
                process.join(_KILL_WAIT)
                return
        # timeout 0 means kill now (SIGKILL), as containerd does
        process.kill()
        if not process.wait(_KILL_WAIT):
            log.warning("simulated process of %s did not end after SIGKILL", container_id[:13])
        process.join(_KILL_WAIT)

    def stop_container(self, container_id: str, timeout: int) -> None:
        self._stop(container_id, timeout, requested=True)

    def remove_container(self, container_id: str) -> None:
        with self._lock:
            record = self._container(container_id)
            if record.state == cri.CONTAINER_RUNNING:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} is running: stop it before removing it"
                )
            del self._containers[container_id]
            self._container_listing.changed()
            writer, process, execs = record.writer, record.process, list(record.execs)
        for exec_process in execs:
            exec_process.kill()
        if writer is not None:
            writer.close()
        if process is not None:
            process.join(_KILL_WAIT)

    def list_containers(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        with self._lock:
            if not hint:
                return self._container_listing.get(
                    lambda: [
                        r.to_container() for r in sorted(self._containers.values(), key=_created_at)
                    ]
                )
            records = sorted(self._containers.values(), key=_created_at)
            return [
                r.to_container()
                for r in records
                if r.id.startswith(hint.id) and r.pod_id.startswith(hint.pod_sandbox_id)
            ]

    def container_status(
        self, container_id: str, verbose: bool
    ) -> tuple[cri.ContainerStatus, dict[str, str]]:
        with self._lock:
            record = self._container(container_id)
            return record.to_status(), record.info() if verbose else {}

    def _exec_slot(self, container_id: str) -> tuple[ContainerRecord, int]:
        """The running container an exec joins, and the pid it gets (under the lock)."""
        self._check_open()
        record = self._container(container_id)
        if record.state != cri.CONTAINER_RUNNING:
            raise FailedPreconditionError(
                f"container {container_id[:13]} is not running: cannot exec in it"
            )
        pid = record.next_pid
        record.next_pid += 1
        return record, pid

    def exec_sync(
        self, container_id: str, cmd: Sequence[str], timeout: int
    ) -> cri.ExecSyncResponse:
        if not cmd:
            raise InvalidArgumentError("cmd is required")
        out, err = OutputCapture(), OutputCapture()
        with self._lock:
            record, pid = self._exec_slot(container_id)
            process = SimulatedProcess(
                list(cmd),
                record.context.for_exec(pid),
                stdout=out.write,
                stderr=err.write,
                name=f"pycri-fake-exec-{container_id[:12]}",
            )
            record.execs.add(process)
            process.start()
        try:
            finished = process.wait(timeout if timeout > 0 else None)
            if not finished:
                process.kill()
                process.wait(_KILL_WAIT)
        finally:
            process.join(_KILL_WAIT)
            with self._lock:
                record.execs.discard(process)
        if not finished:
            raise DeadlineExceededError(
                f"command {shlex.join(cmd)!r} timed out after {timeout}s (it was killed)"
            )
        assert process.result is not None
        return cri.ExecSyncResponse(
            stdout=out.value, stderr=err.value, exit_code=process.result.exit_code
        )

    def exec_stream(self, container_id: str, cmd: Sequence[str], io: StreamIO) -> int:
        if not cmd:
            raise InvalidArgumentError("cmd is required")
        with self._lock:
            record, pid = self._exec_slot(container_id)
        started: list[SimulatedProcess] = []

        def register(process: SimulatedProcess) -> None:
            # killed with the container, like the execs of ExecSync
            with self._lock:
                record.execs.add(process)
                gone = record.state != cri.CONTAINER_RUNNING
            started.append(process)
            if gone:  # the container exited meanwhile
                process.kill()

        try:
            return run_exec(
                cmd,
                record.context,
                pid,
                io,
                name=f"pycri-fake-exec-{container_id[:12]}",
                started=register,
            )
        finally:
            with self._lock:
                record.execs.difference_update(started)

    def attach(self, container_id: str, io: StreamIO) -> None:
        with self._lock:
            record = self._container(container_id)
            if record.state != cri.CONTAINER_RUNNING or record.console is None:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} is not running: cannot attach to it"
                )
            console = record.console
        console.attach(io)

    def attached(self, container_id: str) -> int:
        """How many attach sessions follow the container now (for tests to sync on)."""
        with self._lock:
            console = self._container(container_id).console
        return console.attached if console is not None else 0

    def port_forward(self, pod_id: str, port: int, connection: PortConnection) -> None:
        with self._lock:
            sandbox = self._sandbox(pod_id)
            if sandbox.state != cri.SANDBOX_READY or sandbox.network is None:
                raise FailedPreconditionError(f"pod sandbox {pod_id[:13]} is not ready")
            network = sandbox.network
        forward_port(network, port, connection)

    def reopen_container_log(self, container_id: str) -> None:
        with self._lock:
            record = self._container(container_id)
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

    def update_container_resources(
        self,
        container_id: str,
        linux: cri.LinuxContainerResources | None,
        annotations: Mapping[str, str],
    ) -> None:
        with self._lock:
            record = self._container(container_id)
            if record.state == cri.CONTAINER_EXITED:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} has exited: its resources cannot be updated"
                )
            if linux is not None:
                resources = cri.LinuxContainerResources()
                resources.CopyFrom(linux)
                record.resources = resources

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        now = time.time_ns()
        with self._lock:
            return [
                container_stats(self._containers[cid], now)
                for cid in container_ids
                if cid in self._containers
            ]

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        now = time.time_ns()
        with self._lock:
            stats = []
            for pod_id in pod_ids:
                sandbox = self._sandboxes.get(pod_id)
                if sandbox is None:
                    continue
                members = [c for c in self._containers.values() if c.pod_id == pod_id]
                stats.append(pod_sandbox_stats(sandbox, members, now))
            return stats

    def metric_descriptors(self) -> list[cri.MetricDescriptor]:
        return core_metrics.descriptors()

    def pod_sandbox_metrics(self) -> list[cri.PodSandboxMetrics]:
        now = time.time_ns()
        with self._lock:
            return [
                pod_sandbox_metrics(
                    sandbox,
                    [c for c in self._containers.values() if c.pod_id == sandbox.id],
                    self.pause_image,
                    now,
                )
                for sandbox in self._sandboxes.values()
                if sandbox.state == cri.SANDBOX_READY
            ]

    # -- test hooks ------------------------------------------------------------------------

    def crash(
        self,
        container_id: str,
        exit_code: int = 137,
        reason: str = "OOMKilled",
        message: str = "",
    ) -> None:
        """End a running container's process as if killed (by the OOM killer, by default)."""
        with self._lock:
            record = self._container(container_id)
            process = record.process
            if record.state != cri.CONTAINER_RUNNING or process is None:
                raise FailedPreconditionError(
                    f"container {container_id[:13]} is not running: there is nothing to crash"
                )
        process.crash(exit_code, reason, message)
        process.wait(_KILL_WAIT)
        process.join(_KILL_WAIT)

    # -- images -------------------------------------------------------------------------------

    def _message(self, image: FakeImage) -> cri.Image:
        message = image.to_message()
        message.pinned = is_sandbox_image(message, self.pause_image)
        return message

    def list_images(self) -> list[cri.Image]:
        with self._lock:
            return [self._message(image) for image in self._images.images()]

    def image_status(self, image: str) -> cri.Image | None:
        with self._lock:
            found = self._images.find(image)
            return self._message(found) if found else None

    def pull_image(
        self,
        image: str,
        auth: cri.AuthConfig | None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> str:
        with self._lock:
            self._check_open()
            self._images.check_pullable(image)
        if self.pull_delay or progress is not None:
            self._simulate_download(image, progress)
        with self._lock:
            self._check_open()
            return self._images.add(image).id

    def _simulate_download(
        self, image: str, progress: Callable[[PullProgress], None] | None
    ) -> None:
        total = image_config_for(parse_reference(image).repository).size
        report = progress or (lambda step: None)
        report(PullProgress(image, "Resolving"))
        steps = 4
        for step in range(1, steps + 1):
            time.sleep(self.pull_delay / steps)
            report(PullProgress(image, "Downloading", total * step // steps, total))
        report(PullProgress(image, "Pull complete", total, total))

    def remove_image(self, image: str) -> None:
        with self._lock:
            found = self._images.find(image)
            if found is None:
                raise NotFoundError(f"image {image!r} not found")
            # as containerd's CRI: gone even while containers use it; they keep running
            self._images.remove(found)

    def image_fs_info(self) -> cri.ImageFsInfoResponse:
        now = time.time_ns()
        with self._lock:
            images = self._images.images()
            layers = [_layer(c) for c in self._containers.values()]
        return cri.ImageFsInfoResponse(
            image_filesystems=[
                filesystem_usage(
                    IMAGE_FS,
                    sum(i.size for i in images),
                    len(images) * _INODES_PER_IMAGE,
                    now,
                )
            ],
            container_filesystems=[
                filesystem_usage(
                    CONTAINER_FS,
                    sum(used for used, _ in layers),
                    sum(inodes for _, inodes in layers),
                    now,
                )
            ],
        )


def _discard(data: bytes) -> None:
    """Output of a container without a log path."""
