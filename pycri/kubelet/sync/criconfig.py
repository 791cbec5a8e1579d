"""A pod and its containers as CRI messages: ``PodSandboxConfig`` and ``ContainerConfig``.

The real kubelet's choices: PID namespace per container unless
``shareProcessNamespace`` (then per pod), the node's network for
``hostNetwork``, log directory ``<ns>_<name>_<uid>`` with
``<container>/<attempt>.log``, ``$(VAR)`` expansion in command, args and
env, and the ``io.kubernetes.*`` labels that make the pod findable again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.core.images import normalize_reference
from pycri.errors import InvalidArgumentError
from pycri.kubelet.model import labels as L
from pycri.kubelet.model.spec import Container, Pod, SecurityContext, Volume
from pycri.kubelet.sync.paths import KubeletPaths

__all__ = [
    "PodContext",
    "container_config",
    "container_hash",
    "expand",
    "image_reference",
    "sandbox_config",
    "sandbox_hash",
]

_EXPANSION = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_PROPAGATION = {
    "None": cri.PROPAGATION_PRIVATE,
    "HostToContainer": cri.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": cri.PROPAGATION_BIDIRECTIONAL,
}
_PROTOCOL = {"TCP": cri.TCP, "UDP": cri.UDP, "SCTP": cri.SCTP}
#: the kubelet's milliCPUToShares bounds and the CFS period it uses
_MIN_SHARES, _MAX_SHARES, _CFS_PERIOD = 2, 262144, 100_000


@dataclass(frozen=True)
class PodContext:
    """What a container's config needs besides its pod: node, paths, addresses."""

    node: str
    paths: KubeletPaths
    pod_ip: str = ""
    host_ip: str = ""
    #: the node's resolv.conf, merged under a pod's dnsConfig (dnsPolicy other than None)
    resolv_conf: Path = Path("/etc/resolv.conf")


def image_reference(image: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest`` (what runtimes store)."""
    try:
        return normalize_reference(image)
    except InvalidArgumentError:
        return image


def container_hash(container: Container) -> str:
    """Changes when the container's definition changes (it is then restarted)."""
    return L.content_hash(dict(container.raw) or repr(container))


def sandbox_hash(pod: Pod) -> str:
    """Changes when something the sandbox is built from changes (the pod is then recreated)."""
    spec = pod.spec
    return L.content_hash(
        {
            "hostNetwork": spec.host_network,
            "hostPID": spec.host_pid,
            "hostIPC": spec.host_ipc,
            "share": spec.share_process_namespace,
            "hostname": spec.hostname,
            "dns": [spec.dns_policy, repr(spec.dns_config)],
            "security": repr(spec.security_context),
            "volumes": [repr(v) for v in spec.volumes],
            "ports": [repr(p) for c in spec.all_containers() for p in c.ports if p.host_port],
            "privileged": any(c.security_context.privileged for c in spec.all_containers()),
            "runtimeHandler": spec.runtime_class_name,
        }
    )


def _namespaces(pod: Pod) -> cri.NamespaceOption:
    spec = pod.spec
    if spec.host_pid:
        pid = cri.NODE
    elif spec.share_process_namespace:
        pid = cri.POD
    else:
        pid = cri.CONTAINER
    return cri.NamespaceOption(
        network=cri.NODE if spec.host_network else cri.POD,
        pid=pid,
        ipc=cri.NODE if spec.host_ipc else cri.POD,
    )


def _read_resolv_conf(path: Path) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return servers, searches, options
    for line in lines:
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]
        elif words[0] == "options":
            options += words[1:]
    return servers, searches, options


def _dns(pod: Pod, resolv_conf: Path) -> cri.DNSConfig | None:
    config = pod.spec.dns_config
    if config is None:
        return None  # the runtime's default: the node's resolv.conf
    servers, searches, options = (
        ([], [], []) if pod.spec.dns_policy == "None" else (_read_resolv_conf(resolv_conf))
    )
    merged_options = {o.split(":")[0]: o for o in [*options, *config.options]}
    return cri.DNSConfig(
        servers=list(dict.fromkeys([*config.nameservers, *servers]))[:3],
        searches=list(dict.fromkeys([*config.searches, *searches]))[:32],
        options=list(merged_options.values()),
    )


def sandbox_config(pod: Pod, attempt: int, ctx: PodContext) -> cri.PodSandboxConfig:
    spec = pod.spec
    security = spec.security_context
    groups = [*security.supplemental_groups]
    if security.fs_group is not None:
        groups.append(security.fs_group)
    sandbox_security = cri.LinuxSandboxSecurityContext(
        namespace_options=_namespaces(pod),
        supplemental_groups=groups,
        privileged=any(c.security_context.privileged for c in spec.all_containers()),
    )
    if security.run_as_user is not None:
        sandbox_security.run_as_user.CopyFrom(cri.Int64Value(value=security.run_as_user))
    if security.run_as_group is not None:
        sandbox_security.run_as_group.CopyFrom(cri.Int64Value(value=security.run_as_group))
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(
            name=pod.name, namespace=pod.namespace, uid=pod.uid, attempt=attempt
        ),
        hostname="" if spec.host_network else (spec.hostname or pod.name)[:63],
        log_directory=str(ctx.paths.log_dir(pod.namespace, pod.name, pod.uid)),
        port_mappings=[
            cri.PortMapping(
                protocol=_PROTOCOL[port.protocol],
                container_port=port.container_port,
                host_port=port.host_port,
                host_ip=port.host_ip,
            )
            for container in spec.all_containers()
            for port in container.ports
            if port.host_port
        ],
        labels={
            **pod.labels,
            L.POD_NAME: pod.name,
            L.POD_NAMESPACE: pod.namespace,
            L.POD_UID: pod.uid,
            L.NODE: ctx.node,
        },
        annotations={
            **pod.annotations,
            L.CONFIG_SOURCE: "file",
            L.CONFIG_HASH: pod.uid,
            L.SOURCE: pod.source,
            L.OWNER: pod.owner,
            L.SANDBOX_HASH: sandbox_hash(pod),
        },
        linux=cri.LinuxPodSandboxConfig(
            security_context=sandbox_security, sysctls=dict(security.sysctls)
        ),
    )
    dns = _dns(pod, ctx.resolv_conf)
    if dns is not None:
        config.dns_config.CopyFrom(dns)
    return config


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: unknown names stay as written, ``$$`` is ``$``."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])

    return _EXPANSION.sub(one, text)


def _env(pod: Pod, container: Container, ctx: PodContext) -> dict[str, str]:
    fields = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": ctx.node,
        "status.podIP": ctx.pod_ip,
        "status.hostIP": ctx.host_ip,
    }
    env: dict[str, str] = {}
    for var in container.env:
        env[var.name] = fields.get(var.field_path, "") if var.field_path else expand(var.value, env)
    return env


def _mount(pod: Pod, volume: Volume, ctx: PodContext) -> str:
    if volume.kind == "hostPath":
        return volume.host_path
    return str(ctx.paths.empty_dir(pod.uid, volume.name))


def _container_security(pod: Pod, container: Container) -> cri.LinuxContainerSecurityContext:
    own: SecurityContext = container.security_context
    pod_security = pod.spec.security_context
    groups = [*pod_security.supplemental_groups]
    if pod_security.fs_group is not None:
        groups.append(pod_security.fs_group)
    security = cri.LinuxContainerSecurityContext(
        capabilities=cri.Capability(
            add_capabilities=list(own.capabilities_add),
            drop_capabilities=list(own.capabilities_drop),
        ),
        privileged=own.privileged,
        namespace_options=_namespaces(pod),
        readonly_rootfs=own.read_only_root_filesystem,
        supplemental_groups=groups,
        no_new_privs=own.allow_privilege_escalation is False,
    )
    user = own.run_as_user if own.run_as_user is not None else pod_security.run_as_user
    group = own.run_as_group if own.run_as_group is not None else pod_security.run_as_group
    if user is not None:
        security.run_as_user.CopyFrom(cri.Int64Value(value=user))
    if group is not None:
        security.run_as_group.CopyFrom(cri.Int64Value(value=group))
    return security


def _resources(container: Container) -> cri.LinuxContainerResources:
    res = container.resources
    resources = cri.LinuxContainerResources()
    request = res.cpu_request_millis or 0
    resources.cpu_shares = max(_MIN_SHARES, min(_MAX_SHARES, request * 1024 // 1000))
    if res.cpu_limit_millis:
        resources.cpu_period = _CFS_PERIOD
        resources.cpu_quota = max(1000, res.cpu_limit_millis * _CFS_PERIOD // 1000)
    if res.memory_limit_bytes:
        resources.memory_limit_in_bytes = res.memory_limit_bytes
    return resources


def container_config(
    pod: Pod,
    container: Container,
    *,
    init: bool,
    attempt: int,
    backoff: int,
    ctx: PodContext,
) -> cri.ContainerConfig:
    env = _env(pod, container, ctx)
    mounts = []
    for mount in container.volume_mounts:
        volume = pod.spec.volume(mount.name)
        if volume is None:  # refused by manifest validation; kept safe here
            continue
        host_path = _mount(pod, volume, ctx)
        if mount.sub_path:
            host_path = str(Path(host_path) / mount.sub_path)
        mounts.append(
            cri.Mount(
                container_path=mount.mount_path,
                host_path=host_path,
                readonly=mount.read_only,
                propagation=_PROPAGATION[mount.propagation],
            )
        )
    annotations = {
        L.CONTAINER_HASH: container_hash(container),
        L.RESTART_COUNT: str(attempt),
        L.GRACE_PERIOD: str(pod.spec.termination_grace_period_seconds),
        L.BACKOFF: str(backoff),
    }
    if init:
        annotations[L.INIT] = "true"
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=container.name, attempt=attempt),
        image=cri.ImageSpec(
            image=image_reference(container.image), user_specified_image=container.image
        ),
        command=[expand(arg, env) for arg in container.command],
        args=[expand(arg, env) for arg in container.args],
        working_dir=container.working_dir,
        envs=[cri.KeyValue(key=k, value=v) for k, v in env.items()],
        mounts=mounts,
        log_path=f"{container.name}/{attempt}.log",
        stdin=container.stdin,
        tty=container.tty,
        labels={
            L.POD_NAME: pod.name,
            L.POD_NAMESPACE: pod.namespace,
            L.POD_UID: pod.uid,
            L.CONTAINER_NAME: container.name,
            L.NODE: ctx.node,
        },
        annotations=annotations,
        linux=cri.LinuxContainerConfig(
            resources=_resources(container),
            security_context=_container_security(pod, container),
        ),
    )
