"""The fake runtime's records of pods and containers, and their CRI views."""

from __future__ import annotations

import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.json_format import MessageToDict

from pycri.api import api_pb2 as cri
from pycri.core.logs import CRILogWriter
from pycri.errors import InvalidArgumentError, ResourceExhaustedError
from pycri_shims.fake.processes import SimulatedProcess
from pycri_shims.fake.sh.context import ProcessContext

if TYPE_CHECKING:
    from pycri_shims.fake.interactive import Console
    from pycri_shims.fake.network import FakeNetwork

__all__ = ["ContainerRecord", "IPAllocator", "SandboxRecord", "new_id"]


def new_id() -> str:
    """64 lowercase hex digits, like the ids of real engines."""
    return secrets.token_hex(32)


class IPAllocator:
    """Hands out pod IPs from a CIDR, as a bridge CNI plugin would."""

    def __init__(self, cidr: str) -> None:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as err:
            raise InvalidArgumentError(f"pod CIDR {cidr!r} is invalid: {err}") from None
        self.network = network
        self._used: set[int] = set()
        self._cursor = 2  # .0 is the network, .1 the bridge's gateway

    def allocate(self) -> str:
        size = self.network.num_addresses
        usable = size - 3  # network, gateway, broadcast
        if usable <= 0 or len(self._used) >= usable:
            raise ResourceExhaustedError(f"no free pod IP left in {self.network}")
        while True:
            offset = self._cursor
            self._cursor = self._cursor + 1 if self._cursor + 1 < size - 1 else 2
            if offset not in self._used:
                self._used.add(offset)
                return str(self.network.network_address + offset)

    def release(self, ip: str) -> None:
        try:
            offset = int(ipaddress.ip_address(ip)) - int(self.network.network_address)
        except ValueError:
            return
        self._used.discard(offset)


M = TypeVar("M", cri.PodSandboxConfig, cri.ContainerConfig, cri.ImageSpec)


def _copy(message: M) -> M:
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


@dataclass
class SandboxRecord:
    id: str
    config: cri.PodSandboxConfig
    runtime_handler: str
    created_at: int
    ip: str
    state: cri.PodSandboxState = cri.SANDBOX_READY
    stopped_at: int = 0
    #: the pod's network namespace: where simulated servers listen
    network: FakeNetwork | None = None
    #: the list entry and the state it shows, built once per state (FakeShim.stable_list_entries)
    _listed: tuple[int, cri.PodSandbox] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def create(
        cls, config: cri.PodSandboxConfig, runtime_handler: str, created_at: int, ip: str
    ) -> SandboxRecord:
        return cls(new_id(), _copy(config), runtime_handler, created_at, ip)

    @property
    def hostname(self) -> str:
        return self.config.hostname or self.config.metadata.name

    @property
    def namespace_options(self) -> cri.NamespaceOption:
        return self.config.linux.security_context.namespace_options

    @property
    def host_network(self) -> bool:
        return self.namespace_options.network == cri.NODE

    def to_pod(self) -> cri.PodSandbox:
        """The list entry: the same instance while the pod is unchanged, never mutated."""
        listed = self._listed
        if listed is None or listed[0] != self.state:
            listed = self._listed = (self.state, self._build_pod())
        return listed[1]

    def _build_pod(self) -> cri.PodSandbox:
        return cri.PodSandbox(
            id=self.id,
            metadata=self.config.metadata,
            state=self.state,
            created_at=self.created_at,
            labels=self.config.labels,
            annotations=self.config.annotations,
            runtime_handler=self.runtime_handler,
        )

    def to_status(self) -> cri.PodSandboxStatus:
        return cri.PodSandboxStatus(
            id=self.id,
            metadata=self.config.metadata,
            state=self.state,
            created_at=self.created_at,
            network=cri.PodSandboxNetworkStatus(ip=self.ip),
            linux=cri.LinuxPodSandboxStatus(
                namespaces=cri.Namespace(options=self.namespace_options)
            ),
            labels=self.config.labels,
            annotations=self.config.annotations,
            runtime_handler=self.runtime_handler,
        )

    def info(self, pause_image: str) -> dict[str, str]:
        """Verbose PodSandboxStatus info, shaped like containerd's ``info`` JSON."""
        details: dict[str, Any] = {
            "pid": 1,
            "processStatus": "running" if self.state == cri.SANDBOX_READY else "deleted",
            "runtimeHandler": self.runtime_handler,
            "runtimeType": "pycri.fake",
            "image": pause_image,
            "netNamespaceClosed": self.state != cri.SANDBOX_READY,
            "config": MessageToDict(self.config),
        }
        return {"info": json.dumps(details)}


@dataclass(eq=False)
class ContainerRecord:
    id: str
    pod_id: str
    config: cri.ContainerConfig
    image_spec: cri.ImageSpec
    image_id: str
    argv: list[str]
    log_path: str
    context: ProcessContext
    created_at: int
    state: cri.ContainerState = cri.CONTAINER_CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    resources: cri.LinuxContainerResources | None = None
    process: SimulatedProcess | None = None
    writer: CRILogWriter | None = None
    #: the main process's stdio, for Attach
    console: Console | None = None
    execs: set[SimulatedProcess] = field(default_factory=set)
    #: set when a StopContainer (not the process itself) ends it: core reports that event
    stop_requested: bool = False
    next_pid: int = 2
    #: the list entry, built once per state: kubelet relists every second
    #: (FakeShim.stable_list_entries: core keeps its bytes while it is the same instance)
    _listed: tuple[int, cri.Container] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        pod_id: str,
        config: cri.ContainerConfig,
        image_spec: cri.ImageSpec,
        image_id: str,
        argv: list[str],
        log_path: str,
        context: ProcessContext,
        created_at: int,
    ) -> ContainerRecord:
        resources = None
        if config.HasField("linux") and config.linux.HasField("resources"):
            resources = cri.LinuxContainerResources()
            resources.CopyFrom(config.linux.resources)
        return cls(
            new_id(),
            pod_id,
            _copy(config),
            _copy(image_spec),
            image_id,
            argv,
            log_path,
            context,
            created_at,
            resources=resources,
        )

    def to_container(self) -> cri.Container:
        """The list entry: the same instance while the container is unchanged, never mutated."""
        listed = self._listed
        if listed is None or listed[0] != self.state:
            listed = self._listed = (self.state, self._build_container())
        return listed[1]

    def _build_container(self) -> cri.Container:
        return cri.Container(
            id=self.id,
            pod_sandbox_id=self.pod_id,
            metadata=self.config.metadata,
            image=self.image_spec,
            image_ref=self.image_id,
            state=self.state,
            created_at=self.created_at,
            labels=self.config.labels,
            annotations=self.config.annotations,
            image_id=self.image_id,
        )

    def to_status(self) -> cri.ContainerStatus:
        status = cri.ContainerStatus(
            id=self.id,
            metadata=self.config.metadata,
            state=self.state,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            image=self.image_spec,
            image_ref=self.image_id,
            reason=self.reason,
            message=self.message,
            labels=self.config.labels,
            annotations=self.config.annotations,
            mounts=self.config.mounts,
            log_path=self.log_path,
            image_id=self.image_id,
            user=cri.ContainerUser(
                linux=cri.LinuxContainerUser(
                    uid=self.context.uid,
                    gid=self.context.gid,
                    supplemental_groups=self.context.groups,
                )
            ),
            stop_signal=self.config.stop_signal,
        )
        if self.resources is not None:
            status.resources.linux.CopyFrom(self.resources)
        return status

    def info(self) -> dict[str, str]:
        """Verbose ContainerStatus info, shaped like containerd's ``info`` JSON."""
        details: dict[str, Any] = {
            "sandboxID": self.pod_id,
            "pid": self.context.pid if self.state == cri.CONTAINER_RUNNING else 0,
            "runtimeSpec": {
                "process": {
                    "args": self.argv,
                    "env": [f"{k}={v}" for k, v in self.context.env.items()],
                    "cwd": self.context.working_dir,
                    "user": {"uid": self.context.uid, "gid": self.context.gid},
                },
                "hostname": self.context.hostname,
            },
            "config": MessageToDict(self.config),
        }
        return {"info": json.dumps(details)}
