"""CRI configs -> the JSON bodies of Docker's ``POST /containers/create``.

The mapping is pure (the host's devices are read here, nothing is asked
of Docker; the security rules are pycri/core/security.py's) so it can be
read and tested in one place; :func:`create` is the one call that posts a
body. Raw API bodies rather than docker-py's keyword helpers: they reach
fields the helpers lack (StdinOnce, MaskedPaths, ReadonlyPaths).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from typing import Any

import docker.errors

from pycri.api import api_pb2 as cri
from pycri.core.security import (
    Confinement,
    PidNamespace,
    Profile,
    SecuritySpec,
    container_security,
    oom_score_adj,
    pid_namespace,
    sandbox_security,
)
from pycri.errors import InvalidArgumentError

__all__ = [
    "PROPAGATION_FROM_DOCKER",
    "container_body",
    "create",
    "drop_unknown_capability",
    "resources_update",
    "sandbox_body",
]

_PROPAGATION = {
    cri.PROPAGATION_PRIVATE: "rprivate",
    cri.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    cri.PROPAGATION_BIDIRECTIONAL: "rshared",
}
PROPAGATION_FROM_DOCKER = {
    "rslave": cri.PROPAGATION_HOST_TO_CONTAINER,
    "slave": cri.PROPAGATION_HOST_TO_CONTAINER,
    "rshared": cri.PROPAGATION_BIDIRECTIONAL,
    "shared": cri.PROPAGATION_BIDIRECTIONAL,
}
_PROTOCOLS = {cri.TCP: "tcp", cri.UDP: "udp", cri.SCTP: "sctp"}
# /dev entries Docker's own --privileged leaves out (runtime-managed or per-container)
_SKIP_DEV_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
_UNKNOWN_CAP = re.compile(r'unknown capability: "?(CAP_[A-Z_]+)"?')


def _host_devices() -> list[dict[str, str]]:
    """Every device node under /dev, as Docker's --privileged would give them."""
    found: list[dict[str, str]] = []
    for root, dirs, files in os.walk("/dev"):
        dirs[:] = [d for d in dirs if d not in _SKIP_DEV_DIRS]
        for name in files:
            path = os.path.join(root, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and path != "/dev/console":
                found.append(
                    {"PathOnHost": path, "PathInContainer": path, "CgroupPermissions": "rwm"}
                )
    return found


def drop_unknown_capability(body: dict[str, Any], error: str) -> bool:
    """Remove the capability an older Docker rejected from ``body``; False if none matched.

    The host kernel may know capabilities (CAP_PERFMON, CAP_BPF...) that
    dockerd 20.10 does not, and a privileged container is built from the
    host's list.
    """
    match = _UNKNOWN_CAP.search(error)
    caps = body["HostConfig"].get("CapAdd") or []
    if match is None or match[1] not in caps:
        return False
    body["HostConfig"]["CapAdd"] = [c for c in caps if c != match[1]]
    return True


def create(api: Any, name: str, body: dict[str, Any]) -> str:
    """Create the container; return its id (Docker errors are the caller's to map)."""
    while True:
        try:
            created = api.create_container_from_config(body, name)
        except docker.errors.APIError as err:
            if err.status_code == 400 and drop_unknown_capability(body, str(err.explanation)):
                continue
            raise
        return str(created["Id"])


def _profile(kind: str, profile: Profile) -> list[str]:
    """security_opt entries for a resolved seccomp or AppArmor profile."""
    if profile.confinement == Confinement.UNCONFINED:
        return [f"{kind}=unconfined"]
    if profile.confinement == Confinement.LOCALHOST:
        return [f"{kind}={_read_profile(profile.ref) if kind == 'seccomp' else profile.ref}"]
    return []  # Docker applies its default profile


def _read_profile(path: str) -> str:
    # Docker's API takes the seccomp profile's JSON itself, not a path.
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise InvalidArgumentError(f"cannot read the seccomp profile {path}: {err}") from err


def _security(body: dict[str, Any], host: dict[str, Any], spec: SecuritySpec) -> None:
    """Render a resolved security spec (pycri/core/security.py) into the create body.

    Docker's own ``Privileged: true`` asks for every capability and fails
    where the bounding set lacks one, so a privileged container gets the
    spec's capabilities (the host's), every device and an unconfined
    profile instead; /sys stays read-only (Docker mounts it rw only for
    Privileged).
    """
    if spec.user:
        body["User"] = spec.user
    if spec.supplemental_groups:
        host["GroupAdd"] = [str(g) for g in spec.supplemental_groups]
    host["ReadonlyRootfs"] = spec.readonly_rootfs
    host["SecurityOpt"] = [
        *_profile("seccomp", spec.seccomp),
        *_profile("apparmor", spec.apparmor),
        *(f"label={part}" for part in spec.selinux),
        *(["no-new-privileges"] if spec.no_new_privs else []),
    ]
    if spec.cap_add:
        host["CapAdd"] = list(spec.cap_add)
    if spec.cap_drop:
        host["CapDrop"] = list(spec.cap_drop)
    if spec.masked_paths is not None:
        host["MaskedPaths"] = list(spec.masked_paths)
    if spec.readonly_paths is not None:
        host["ReadonlyPaths"] = list(spec.readonly_paths)
    if spec.privileged:
        host["Devices"] = [*host.get("Devices", []), *_host_devices()]
        host["DeviceCgroupRules"] = ["a *:* rwm"]


def _port_bindings(
    body: dict[str, Any], host: dict[str, Any], mappings: Iterable[cri.PortMapping]
) -> None:
    exposed: dict[str, dict[str, str]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for mapping in mappings:
        if mapping.host_port == 0:
            continue  # nothing to publish: the port is reachable on the pod IP anyway
        key = f"{mapping.container_port}/{_PROTOCOLS.get(mapping.protocol, 'tcp')}"
        exposed[key] = {}
        bindings.setdefault(key, []).append(
            {"HostIp": mapping.host_ip, "HostPort": str(mapping.host_port)}
        )
    if exposed:
        body["ExposedPorts"] = exposed
        host["PortBindings"] = bindings


def sandbox_body(
    config: cri.PodSandboxConfig, *, image: str, labels: dict[str, str]
) -> dict[str, Any]:
    """The pause container of a pod."""
    linux = config.linux
    ctx = linux.security_context
    ns = ctx.namespace_options
    host: dict[str, Any] = {
        "NetworkMode": "host" if ns.network == cri.NODE else "default",
        # the node's hostname with the node's network, as dockershim did
        "UTSMode": "host" if ns.network == cri.NODE else "",
        # shareable: Docker refuses to let others join a "private" IPC namespace
        "IpcMode": "host" if ns.ipc == cri.NODE else "shareable",
        "PidMode": "host" if ns.pid == cri.NODE else "",
        "RestartPolicy": {"Name": "no"},
    }
    body: dict[str, Any] = {"Image": image, "Labels": labels, "HostConfig": host}
    if config.hostname and ns.network != cri.NODE:
        body["Hostname"] = config.hostname  # Docker refuses a hostname in the host's UTS
    dns = config.dns_config
    if dns.servers:
        host["Dns"] = list(dns.servers)
    if dns.searches:
        host["DnsSearch"] = list(dns.searches)
    if dns.options:
        host["DnsOptions"] = list(dns.options)
    if ns.network != cri.NODE:
        _port_bindings(body, host, config.port_mappings)
    if linux.cgroup_parent:
        host["CgroupParent"] = linux.cgroup_parent
    if linux.sysctls:
        host["Sysctls"] = dict(linux.sysctls)
    _security(body, host, sandbox_security(ctx))
    return body


def _pid_mode(ns: cri.NamespaceOption, sandbox_id: str) -> str:
    mode, target = pid_namespace(ns)
    if mode == PidNamespace.HOST:
        return "host"
    if mode == PidNamespace.CONTAINER:
        return ""
    return f"container:{target or sandbox_id}"


def _binds(mounts: Iterable[cri.Mount]) -> list[str]:
    binds = []
    for mount in mounts:
        if not mount.host_path:
            raise InvalidArgumentError(
                f"mount of {mount.container_path!r}: only host-path mounts are supported "
                "by the docker shim"
            )
        options = ["ro" if mount.readonly else "rw", _PROPAGATION[mount.propagation]]
        if mount.selinux_relabel:
            options.append("Z")
        binds.append(f"{mount.host_path}:{mount.container_path}:{','.join(options)}")
    return binds


def _resources(host: dict[str, Any], res: cri.LinuxContainerResources) -> None:
    host.update(resources_update(res))
    adj = oom_score_adj(res)
    if adj is not None:
        host["OomScoreAdj"] = adj


def resources_update(res: cri.LinuxContainerResources) -> dict[str, Any]:
    """The Docker resource fields (create and ``POST /containers/{id}/update`` share them)."""
    out: dict[str, Any] = {}
    if res.cpu_shares:
        out["CpuShares"] = res.cpu_shares
    if res.cpu_period:
        out["CpuPeriod"] = res.cpu_period
    if res.cpu_quota:
        out["CpuQuota"] = res.cpu_quota
    if res.cpuset_cpus:
        out["CpusetCpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        out["CpusetMems"] = res.cpuset_mems
    if res.memory_limit_in_bytes:
        out["Memory"] = res.memory_limit_in_bytes
        # Without MemorySwap Docker allows as much swap again; Kubernetes means no swap.
        out["MemorySwap"] = res.memory_swap_limit_in_bytes or res.memory_limit_in_bytes
    return out


def container_body(
    config: cri.ContainerConfig,
    *,
    sandbox_id: str,
    sandbox_host: dict[str, Any],
    labels: dict[str, str],
) -> dict[str, Any]:
    """An app container that joins its sandbox's namespaces.

    ``sandbox_host`` is the sandbox's HostConfig: a pod on the node's IPC or
    UTS namespace puts its containers there too, whatever their own config
    says (Docker cannot join those through ``container:``). Docker has no
    ``container:`` UTS mode at all: a container copies the sandbox's
    hostname into a UTS namespace of its own, as under dockershim.
    """
    ctx = config.linux.security_context
    ns = ctx.namespace_options
    host_ipc = ns.ipc == cri.NODE or sandbox_host.get("IpcMode") == "host"
    host: dict[str, Any] = {
        "NetworkMode": f"container:{sandbox_id}",
        "IpcMode": "host" if host_ipc else f"container:{sandbox_id}",
        "UTSMode": "host" if sandbox_host.get("UTSMode") == "host" else "",
        "PidMode": _pid_mode(ns, sandbox_id),
        "RestartPolicy": {"Name": "no"},
        # pycri copies this log into the CRI file; json-file keeps partial-line marks
        "LogConfig": {"Type": "json-file", "Config": {}},
        "Binds": _binds(config.mounts),
        "Devices": [
            {
                "PathOnHost": d.host_path,
                "PathInContainer": d.container_path,
                "CgroupPermissions": d.permissions or "rwm",
            }
            for d in config.devices
        ],
    }
    if sandbox_host.get("CgroupParent"):
        host["CgroupParent"] = sandbox_host["CgroupParent"]
    body: dict[str, Any] = {
        "Image": config.image.image,
        "Labels": labels,
        "Env": [f"{kv.key}={kv.value}" for kv in config.envs],
        "Tty": config.tty,
        "OpenStdin": config.stdin,
        "StdinOnce": config.stdin_once,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "HostConfig": host,
    }
    # An explicit entrypoint makes Docker ignore the image's CMD, as Kubernetes expects.
    if config.command:
        body["Entrypoint"] = list(config.command)
    if config.args:
        body["Cmd"] = list(config.args)
    if config.working_dir:
        body["WorkingDir"] = config.working_dir
    if config.stop_signal:
        body["StopSignal"] = cri.Signal.Name(config.stop_signal)
    _resources(host, config.linux.resources)
    _security(body, host, container_security(ctx))
    return body
