"""The part of the Kubernetes ``v1`` Pod (and ``apps/v1`` Deployment) the kubelet runs.

Plain frozen dataclasses filled by :mod:`pycri.kubelet.model.manifest`, with the
API server's defaults already applied. ``raw`` keeps the document as the
user wrote it, for hashing and for ``get -o yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Container",
    "ContainerPort",
    "DNSConfig",
    "Deployment",
    "EnvVar",
    "ExecProbe",
    "Pod",
    "PodSecurityContext",
    "PodSpec",
    "ProbeKind",
    "Resources",
    "RestartPolicy",
    "SecurityContext",
    "Volume",
    "VolumeMount",
]

RestartPolicy = Literal["Always", "OnFailure", "Never"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
ProbeKind = Literal["liveness", "readiness", "startup"]


@dataclass(frozen=True)
class ExecProbe:
    """A probe of the ``exec`` kind, with the API server's defaults."""

    command: tuple[str, ...]
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str = ""
    #: ``valueFrom.fieldRef.fieldPath`` (metadata.name, status.podIP, ...)
    field_path: str = ""


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    host_port: int = 0
    protocol: str = "TCP"
    host_ip: str = ""
    name: str = ""


@dataclass(frozen=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""
    #: None, HostToContainer or Bidirectional
    propagation: str = "None"


@dataclass(frozen=True)
class Resources:
    cpu_request_millis: int | None = None
    cpu_limit_millis: int | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None


@dataclass(frozen=True)
class SecurityContext:
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    privileged: bool = False
    read_only_root_filesystem: bool = False
    allow_privilege_escalation: bool | None = None
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodSecurityContext:
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DNSConfig:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    #: ``name`` or ``name:value``, as resolv.conf writes them
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    image_pull_policy: PullPolicy
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    working_dir: str = ""
    ports: tuple[ContainerPort, ...] = ()
    volume_mounts: tuple[VolumeMount, ...] = ()
    resources: Resources = field(default_factory=Resources)
    security_context: SecurityContext = field(default_factory=SecurityContext)
    liveness_probe: ExecProbe | None = None
    readiness_probe: ExecProbe | None = None
    startup_probe: ExecProbe | None = None
    stdin: bool = False
    tty: bool = False
    #: the container as written, for its hash (a changed container is restarted)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def probe(self, kind: ProbeKind) -> ExecProbe | None:
        return {
            "liveness": self.liveness_probe,
            "readiness": self.readiness_probe,
            "startup": self.startup_probe,
        }[kind]


@dataclass(frozen=True)
class Volume:
    name: str
    #: "emptyDir" or "hostPath"; unsupported types are served as an empty directory
    kind: Literal["emptyDir", "hostPath"]
    host_path: str = ""
    #: hostPath.type: "", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, ...
    host_path_type: str = ""


@dataclass(frozen=True)
class PodSpec:
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    volumes: tuple[Volume, ...] = ()
    restart_policy: RestartPolicy = "Always"
    termination_grace_period_seconds: int = 30
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    share_process_namespace: bool = False
    hostname: str = ""
    dns_policy: str = "ClusterFirst"
    dns_config: DNSConfig | None = None
    security_context: PodSecurityContext = field(default_factory=PodSecurityContext)
    #: without an API server there are no RuntimeClass objects: the name is the handler
    runtime_class_name: str = ""

    def all_containers(self) -> tuple[Container, ...]:
        return (*self.init_containers, *self.containers)

    def volume(self, name: str) -> Volume | None:
        return next((v for v in self.volumes if v.name == name), None)


@dataclass(frozen=True)
class Pod:
    """A pod this node should run: from a Pod document, or a Deployment replica."""

    name: str
    namespace: str
    uid: str
    spec: PodSpec
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: the manifest file it came from ("" when built in memory)
    source: str = ""
    #: the Deployment it is a replica of ("" for a bare Pod)
    owner: str = ""
    #: the document as written (a replica: its Deployment's template spec)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def full_name(self) -> str:
        """``name_namespace``, as the kubelet names a pod in its messages."""
        return f"{self.name}_{self.namespace}"


@dataclass(frozen=True)
class Deployment:
    """Replicas of a pod template: pods ``<name>-0`` .. ``<name>-<replicas-1>``."""

    name: str
    namespace: str
    replicas: int
    selector: Mapping[str, str]
    pods: tuple[Pod, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"
