"""CRI configs to ``nerdctl run`` / ``nerdctl create`` argument lists.

Pure functions: no process is started here, so every mapping rule can be
read (and unit tested) in one place.

Namespaces follow the CRI: ``NamespaceOption.pid`` defaults to POD (its
zero value), so containers share the pod's PID namespace unless the
request says CONTAINER, as the kubelet does for pods without
``shareProcessNamespace``. NODE means the host's namespace, TARGET another
container's. nerdctl 1.x cannot join another container's IPC namespace
(only ``host`` or ``private``), so there containers of one pod get an IPC
namespace each, with the pod's IPC sysctls set in every one; nerdctl 2 gets
``--ipc container:<sandbox>``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence

from pycri.api import api_pb2 as cri
from pycri.core.security import (
    Confinement,
    PidNamespace,
    Profile,
    SecuritySpec,
    container_security,
    ipc_sysctls,
    oom_score_adj,
    pid_namespace,
)
from pycri.errors import InvalidArgumentError
from pycri_shims.nerdctl.labels import MAX_LABEL_BYTES

__all__ = [
    "container_args",
    "mounts_label",
    "namespace_label",
    "ps_filters",
    "sandbox_args",
    "update_args",
]

#: text nerdctl's CSV filter parser takes as it is
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$")

_PROTOCOLS = {cri.TCP: "tcp", cri.UDP: "udp", cri.SCTP: "sctp"}
_PROPAGATION = {
    cri.PROPAGATION_PRIVATE: "rprivate",
    cri.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    cri.PROPAGATION_BIDIRECTIONAL: "rshared",
}


def _labels(labels: dict[str, str]) -> list[str]:
    # --label is a string array in nerdctl: commas and '=' in values are safe
    out: list[str] = []
    for key, value in labels.items():
        out += ["--label", f"{key}={value}"]
    return out


def _namespace_options(config: cri.PodSandboxConfig) -> cri.NamespaceOption:
    return config.linux.security_context.namespace_options


def namespace_label(config: cri.PodSandboxConfig) -> str:
    """The pod's namespace modes, kept on the sandbox for PodSandboxStatus."""
    ns = _namespace_options(config)
    return json.dumps({"network": ns.network, "pid": ns.pid, "ipc": ns.ipc})


def sandbox_args(
    config: cri.PodSandboxConfig,
    name: str,
    labels: dict[str, str],
    network: str,
    pause_image: str,
) -> list[str]:
    """``nerdctl run -d ...`` for the pause container of a pod."""
    ns = _namespace_options(config)
    host_network = ns.network == cri.NODE
    args = ["run", "-d", "--name", name, "--pull", "never", "--log-driver", "json-file"]
    args += ["--net", "host" if host_network else network]
    if not host_network and config.hostname:
        args += ["--hostname", config.hostname]
    if ns.pid == cri.NODE:
        args += ["--pid", "host"]
    if ns.ipc == cri.NODE:
        args += ["--ipc", "host"]
    dns = config.dns_config
    for server in dns.servers:
        args += ["--dns", server]
    for search in dns.searches:
        args += ["--dns-search", search]
    for option in dns.options:
        args += ["--dns-option", option]
    if not host_network:
        for port in config.port_mappings:
            if port.host_port <= 0:
                continue  # the CRI's "no host port"
            host = f"{port.host_ip}:" if port.host_ip else ""
            proto = _PROTOCOLS.get(port.protocol, "tcp")
            args += ["--publish", f"{host}{port.host_port}:{port.container_port}/{proto}"]
    for key, value in sorted(config.linux.sysctls.items()):
        args += ["--sysctl", f"{key}={value}"]
    if config.linux.cgroup_parent:
        args += ["--cgroup-parent", config.linux.cgroup_parent]
    args += _labels(labels)
    args.append(pause_image)
    return args


def mounts_label(mounts: Iterable[cri.Mount]) -> str:
    """The CRI mounts as JSON, so ContainerStatus can report them as requested."""
    return json.dumps(
        [
            {
                "container_path": m.container_path,
                "host_path": m.host_path,
                "readonly": m.readonly,
                "selinux_relabel": m.selinux_relabel,
                "propagation": m.propagation,
                "recursive_read_only": m.recursive_read_only,
                **_image_fields(m),
            }
            for m in mounts
        ],
        separators=(",", ":"),
    )


def _image_fields(mount: cri.Mount) -> dict[str, object]:
    if not mount.HasField("image"):
        return {}
    spec = {"image": mount.image.image, "image_ref": mount.image.image_ref}
    return {"image": spec, "image_sub_path": mount.image_sub_path}


def _csv(fields: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def _mount_args(mount: cri.Mount) -> list[str]:
    if not mount.container_path or not mount.host_path:
        raise InvalidArgumentError("a mount needs container_path and host_path")
    # containerd's CRI creates a missing host path as a directory; so do we
    if not os.path.exists(mount.host_path):
        os.makedirs(mount.host_path, mode=0o755, exist_ok=True)
    fields = ["type=bind", f"source={mount.host_path}", f"target={mount.container_path}"]
    if mount.readonly:
        fields.append("readonly")
    fields.append(f"bind-propagation={_PROPAGATION.get(mount.propagation, 'rprivate')}")
    # --mount is parsed as CSV by nerdctl: quoting keeps commas in paths intact
    return ["--mount", _csv(fields)]


def _security_args(spec: SecuritySpec) -> list[str]:
    """Render a resolved security spec (pycri/core/security.py) as nerdctl flags.

    Masked and read-only paths have no flag: specedit.py's runc wrapper
    applies them. A privileged container gets exactly the host's
    capabilities (the spec's) rather than ``--privileged``, which asks for
    every one and fails on hosts whose bounding set lacks some.
    """
    args: list[str] = []
    if spec.user:
        args += ["--user", spec.user]
    for gid in spec.supplemental_groups:
        args += ["--group-add", str(gid)]
    if spec.readonly_rootfs:
        args.append("--read-only")
    if spec.no_new_privs:
        args += ["--security-opt", "no-new-privileges"]
    if spec.cap_add:
        args += ["--cap-add", ",".join(c.removeprefix("CAP_") for c in spec.cap_add)]
    if spec.cap_drop:
        args += ["--cap-drop", ",".join(c.removeprefix("CAP_") for c in spec.cap_drop)]
    args += _profile_args("seccomp", spec.seccomp)
    args += _profile_args("apparmor", spec.apparmor)
    return args


def _profile_args(kind: str, profile: Profile) -> list[str]:
    if profile.confinement == Confinement.UNCONFINED:
        return ["--security-opt", f"{kind}=unconfined"]
    if profile.confinement == Confinement.LOCALHOST:
        return ["--security-opt", f"{kind}={profile.ref}"]
    return []  # nerdctl applies containerd's default profile


def _resource_args(res: cri.LinuxContainerResources) -> list[str]:
    args: list[str] = []
    if res.cpu_shares:
        args += ["--cpu-shares", str(res.cpu_shares)]
    if res.cpu_period:
        args += ["--cpu-period", str(res.cpu_period)]
    if res.cpu_quota:
        args += ["--cpu-quota", str(res.cpu_quota)]
    if res.memory_limit_in_bytes:
        args += ["--memory", str(res.memory_limit_in_bytes)]
    if res.memory_swap_limit_in_bytes:
        args += ["--memory-swap", str(res.memory_swap_limit_in_bytes)]
    if res.cpuset_cpus:
        args += ["--cpuset-cpus", res.cpuset_cpus]
    if res.cpuset_mems:
        args += ["--cpuset-mems", res.cpuset_mems]
    adj = oom_score_adj(res)
    if adj is not None:
        args += ["--oom-score-adj", str(adj)]
    for key, value in sorted(res.unified.items()):
        args += ["--cgroup-conf", f"{key}={value}"]
    return args


def container_args(
    config: cri.ContainerConfig,
    sandbox_config: cri.PodSandboxConfig,
    pod_id: str,
    name: str,
    labels: dict[str, str],
    image: str,
    *,
    ipc_join: bool,
    runtime: str = "",
) -> list[str]:
    """``nerdctl create ...`` for a container of the pod ``pod_id``; ``runtime``, when
    given, is a runc-compatible binary to run it with (specedit's wrapper)."""
    pod_ns = _namespace_options(sandbox_config)
    ns = config.linux.security_context.namespace_options
    args = ["create", "--name", name, "--pull", "never", "--log-driver", "json-file"]
    # the pod's network (host or CNI) is the pause container's: join it
    args += ["--net", f"container:{pod_id}"]
    pid, target = pid_namespace(ns, pod_ns)
    if pid == PidNamespace.HOST:
        args += ["--pid", "host"]
    elif pid != PidNamespace.CONTAINER:
        args += ["--pid", f"container:{target or pod_id}"]
    if pod_ns.ipc == cri.NODE or ns.ipc == cri.NODE:
        args += ["--ipc", "host"]
    elif ipc_join:
        args += ["--ipc", f"container:{pod_id}"]
    else:
        # an IPC namespace of its own: the pod's IPC sysctls must be set in it too
        for key, value in ipc_sysctls(sandbox_config.linux.sysctls).items():
            args += ["--sysctl", f"{key}={value}"]
    if config.working_dir:
        args += ["--workdir", config.working_dir]
    for env in config.envs:
        args += ["--env", f"{env.key}={env.value}"]
    for mount in config.mounts:
        args += _mount_args(mount)
    for device in config.devices:
        perms = device.permissions or "rwm"
        args += ["--device", f"{device.host_path}:{device.container_path}:{perms}"]
    if sandbox_config.linux.cgroup_parent:
        # the kubelet's pod cgroup holds every container of the pod
        args += ["--cgroup-parent", sandbox_config.linux.cgroup_parent]
    if config.tty:
        args.append("--tty")
    if config.stdin:
        args.append("--interactive")
    args += _resource_args(config.linux.resources)
    args += _security_args(container_security(config.linux.security_context))
    if runtime:
        args += ["--runtime", runtime]
    args += _labels(labels)
    # CRI command replaces the image's ENTRYPOINT (and, as in Docker, its
    # CMD); args replace CMD. --entrypoint is a string array in nerdctl.
    for part in config.command:
        args += ["--entrypoint", part]
    args.append(image)
    args += list(config.args)
    return args


def update_args(res: cri.LinuxContainerResources) -> list[str]:
    """``nerdctl update`` flags for new resources (what ``update`` can change)."""
    args: list[str] = []
    for flag, value in (
        ("--cpu-shares", res.cpu_shares),
        ("--cpu-period", res.cpu_period),
        ("--cpu-quota", res.cpu_quota),
        ("--memory", res.memory_limit_in_bytes),
        ("--memory-swap", res.memory_swap_limit_in_bytes),
    ):
        if value:
            args += [flag, str(value)]
    if res.cpuset_cpus:
        args += ["--cpuset-cpus", res.cpuset_cpus]
    if res.cpuset_mems:
        args += ["--cpuset-mems", res.cpuset_mems]
    return args


def ps_filters(object_id: str, selector: Mapping[str, str]) -> list[str]:
    """``ps --filter`` arguments for what nerdctl can match; core filters everything again.

    nerdctl parses a filter as CSV, so a quote or comma in client text would
    make it fail; only plain ids and labels are handed over, the rest is
    left to core. Labels split into pieces cannot be matched by nerdctl.
    """
    filters = [f"id={object_id}"] if object_id and _PLAIN.match(object_id) else []
    for key, value in sorted(selector.items()):
        if (
            _PLAIN.match(key)
            and (not value or _PLAIN.match(value))
            and len(key.encode()) + len(value.encode()) <= MAX_LABEL_BYTES
        ):
            filters.append(f"label={key}={value}")
    return filters
