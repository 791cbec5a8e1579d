"""Request validation shared by every shim: INVALID_ARGUMENT naming the field.

Names end up in engine container names (``k8s_<name>_<pod>_<ns>_...``), so
they must not carry the ``_`` separator or characters engines reject.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pycri.api import api_pb2 as cri
from pycri.core.images import normalize_reference
from pycri.errors import InvalidArgumentError

__all__ = [
    "require_id",
    "validate_container_config",
    "validate_exec_cmd",
    "validate_filter",
    "validate_image_spec",
    "validate_linux_resources",
    "validate_pod_sandbox_config",
]

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_MAX_NAME = 253
_MAX_LABEL_KEY = 317  # prefix (253) + "/" + name (63), as Kubernetes allows


def _name(value: str, field: str, *, required: bool = True) -> None:
    if not value:
        if required:
            raise InvalidArgumentError(f"{field} is required")
        return
    if len(value) > _MAX_NAME:
        raise InvalidArgumentError(f"{field} is longer than {_MAX_NAME} characters")
    if not _NAME.match(value):
        raise InvalidArgumentError(
            f"{field} {value!r} is invalid: use letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )


def _string_map(values: Mapping[str, str], field: str) -> None:
    for key, value in values.items():
        if not key:
            raise InvalidArgumentError(f"{field} has an empty key")
        if len(key) > _MAX_LABEL_KEY:
            raise InvalidArgumentError(f"{field} key {key[:40]!r}... is too long")
        if "\x00" in key or "\x00" in value:
            raise InvalidArgumentError(f"{field} {key!r} contains a NUL character")


def require_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgumentError(f"{field} is required")
    if not _id_text(value):
        raise InvalidArgumentError(f"{field} {value[:80]!r} is not a valid id")
    return value


def _id_text(value: str) -> bool:
    return len(value) <= 256 and value.isprintable() and not any(c.isspace() for c in value)


def validate_filter(
    f: cri.PodSandboxFilter
    | cri.ContainerFilter
    | cri.ContainerStatsFilter
    | cri.PodSandboxStatsFilter
    | None,
    field: str = "filter",
) -> None:
    """Ids that can be ids and label selectors without NULs, before any engine sees them."""
    if f is None:
        return
    if f.id and not _id_text(f.id):
        raise InvalidArgumentError(f"{field}.id {f.id[:80]!r} is not a valid id prefix")
    pod_id = getattr(f, "pod_sandbox_id", "")
    if pod_id and not _id_text(pod_id):
        raise InvalidArgumentError(
            f"{field}.pod_sandbox_id {pod_id[:80]!r} is not a valid id prefix"
        )
    _string_map(f.label_selector, f"{field}.label_selector")


def validate_pod_sandbox_config(config: cri.PodSandboxConfig, field: str = "config") -> None:
    meta = config.metadata
    if not config.HasField("metadata"):
        raise InvalidArgumentError(f"{field}.metadata is required")
    _name(meta.name, f"{field}.metadata.name")
    # containerd takes a pod without namespace or uid (crictl users write such
    # configs); engine names and name keys stay unambiguous without them
    _name(meta.namespace, f"{field}.metadata.namespace", required=False)
    _name(meta.uid, f"{field}.metadata.uid", required=False)
    _string_map(config.labels, f"{field}.labels")
    _string_map(config.annotations, f"{field}.annotations")
    if config.log_directory and not os.path.isabs(config.log_directory):
        raise InvalidArgumentError(
            f"{field}.log_directory {config.log_directory!r} must be an absolute path"
        )
    _group_needs_user(config.linux.security_context, f"{field}.linux.security_context")
    if config.hostname and not _NAME.match(config.hostname):
        raise InvalidArgumentError(f"{field}.hostname {config.hostname!r} is not a valid hostname")
    for index, mapping in enumerate(config.port_mappings):
        where = f"{field}.port_mappings[{index}]"
        if not 0 < mapping.container_port < 65536:
            raise InvalidArgumentError(
                f"{where}.container_port {mapping.container_port} is out of range"
            )
        if not 0 <= mapping.host_port < 65536:
            raise InvalidArgumentError(f"{where}.host_port {mapping.host_port} is out of range")


def _group_needs_user(
    ctx: cri.LinuxSandboxSecurityContext | cri.LinuxContainerSecurityContext, field: str
) -> None:
    """The CRI's rule: a group alone must be refused, not run as root's."""
    username = getattr(ctx, "run_as_username", "")
    if ctx.HasField("run_as_group") and not ctx.HasField("run_as_user") and not username:
        raise InvalidArgumentError(
            f"{field}.run_as_group is set without run_as_user or run_as_username"
        )


def validate_image_spec(spec: cri.ImageSpec, field: str) -> str:
    """The normalised reference (or id) the spec names."""
    if not spec.image:
        raise InvalidArgumentError(f"{field}.image is required")
    try:
        return normalize_reference(spec.image)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(f"{field}.image: {err.message}") from None


def validate_container_config(config: cri.ContainerConfig, field: str = "config") -> None:
    if not config.HasField("metadata"):
        raise InvalidArgumentError(f"{field}.metadata is required")
    _name(config.metadata.name, f"{field}.metadata.name")
    if not config.HasField("image"):
        raise InvalidArgumentError(f"{field}.image is required")
    validate_image_spec(config.image, f"{field}.image")
    _string_map(config.labels, f"{field}.labels")
    _string_map(config.annotations, f"{field}.annotations")
    for index, kv in enumerate(config.envs):
        if not kv.key or "=" in kv.key or "\x00" in kv.key or "\x00" in kv.value:
            raise InvalidArgumentError(f"{field}.envs[{index}].key {kv.key!r} is invalid")
    for index, arg in enumerate([*config.command, *config.args]):
        if "\x00" in arg:
            raise InvalidArgumentError(f"{field}.command/args[{index}] contains a NUL character")
    _group_needs_user(config.linux.security_context, f"{field}.linux.security_context")
    if config.working_dir and not config.working_dir.startswith("/"):
        raise InvalidArgumentError(f"{field}.working_dir {config.working_dir!r} must be absolute")
    for index, mount in enumerate(config.mounts):
        if not mount.container_path.startswith("/"):
            raise InvalidArgumentError(
                f"{field}.mounts[{index}].container_path {mount.container_path!r} must be absolute"
            )
        if mount.host_path and not mount.host_path.startswith("/"):
            raise InvalidArgumentError(
                f"{field}.mounts[{index}].host_path {mount.host_path!r} must be absolute"
            )
    if config.log_path:
        parts = config.log_path.split("/")
        if config.log_path.startswith("/") or ".." in parts:
            raise InvalidArgumentError(
                f"{field}.log_path {config.log_path!r} must be relative to the pod's "
                "log_directory and stay inside it"
            )


def validate_exec_cmd(cmd: list[str]) -> None:
    if not cmd:
        raise InvalidArgumentError("cmd is required")
    if not cmd[0]:
        raise InvalidArgumentError("cmd[0] (the program) is empty")
    if any("\x00" in arg for arg in cmd):
        raise InvalidArgumentError("cmd contains a NUL character")


# the kernel's bounds (CFS period 1 ms..1 s; cpu.shares 2..262144, as the kubelet clamps)
_CPU_PERIOD = (1_000, 1_000_000)
_CPU_SHARES = (2, 262_144)
_OOM_SCORE_ADJ = (-1000, 1000)
_CPU_LIST = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
_PAGE_SIZE = re.compile(r"[1-9][0-9]*[KMGTP]B")
# cgroup v2 interface files: <controller>.<name>, e.g. memory.high, hugetlb.2MB.max
# (fullmatch, all three: a $ would let a trailing newline through)
_UNIFIED_KEY = re.compile(r"[a-z][a-z0-9_]*\.[A-Za-z0-9_.]+")


def validate_linux_resources(res: cri.LinuxContainerResources, field: str) -> None:
    """Resources no cgroup can take, refused before any engine (or record) sees them.

    Negative CPU quota, memory and swap limits mean "no limit" (the kubelet sends
    -1 for an unlimited pod, and subtracts a pod's overhead from what it read), so
    only the shape of a value is checked where the kernel itself defines no range.
    """
    if res.cpu_period and not _CPU_PERIOD[0] <= res.cpu_period <= _CPU_PERIOD[1]:
        raise InvalidArgumentError(
            f"{field}.cpu_period {res.cpu_period} is out of range: 0 (unset) or "
            f"{_CPU_PERIOD[0]}..{_CPU_PERIOD[1]} microseconds"
        )
    if res.cpu_shares and not _CPU_SHARES[0] <= res.cpu_shares <= _CPU_SHARES[1]:
        raise InvalidArgumentError(
            f"{field}.cpu_shares {res.cpu_shares} is out of range: 0 (unset) or "
            f"{_CPU_SHARES[0]}..{_CPU_SHARES[1]}"
        )
    if not _OOM_SCORE_ADJ[0] <= res.oom_score_adj <= _OOM_SCORE_ADJ[1]:
        raise InvalidArgumentError(
            f"{field}.oom_score_adj {res.oom_score_adj} is out of range "
            f"{_OOM_SCORE_ADJ[0]}..{_OOM_SCORE_ADJ[1]}"
        )
    memory, swap = res.memory_limit_in_bytes, res.memory_swap_limit_in_bytes
    if memory > 0 and 0 < swap < memory:
        raise InvalidArgumentError(
            f"{field}.memory_swap_limit_in_bytes {swap} is below memory_limit_in_bytes "
            f"{memory}: it limits memory and swap together"
        )
    for name, cpus in (("cpuset_cpus", res.cpuset_cpus), ("cpuset_mems", res.cpuset_mems)):
        if cpus and not _cpu_list(cpus):
            raise InvalidArgumentError(
                f"{field}.{name} {cpus[:80]!r} is not a list such as '0-3,6'"
            )
    sizes: set[str] = set()
    for index, limit in enumerate(res.hugepage_limits):
        if not _PAGE_SIZE.fullmatch(limit.page_size):
            raise InvalidArgumentError(
                f"{field}.hugepage_limits[{index}].page_size {limit.page_size[:40]!r} is not "
                "a page size such as '2MB' or '1GB'"
            )
        if limit.page_size in sizes:
            raise InvalidArgumentError(
                f"{field}.hugepage_limits[{index}]: page size {limit.page_size} is given twice"
            )
        sizes.add(limit.page_size)
    for key, value in res.unified.items():
        if len(key) > _MAX_NAME or not _UNIFIED_KEY.fullmatch(key) or ".." in key:
            raise InvalidArgumentError(
                f"{field}.unified key {key[:80]!r} is not a cgroup v2 file such as 'memory.high'"
            )
        if any(c in value for c in "\x00\n") or len(value) > 4096:
            raise InvalidArgumentError(f"{field}.unified[{key!r}] is not a one-line value")


def _cpu_list(text: str) -> bool:
    if len(text) > 4096 or not _CPU_LIST.fullmatch(text):
        return False
    for part in text.split(","):
        low, _, high = part.partition("-")
        if high and int(high) < int(low):
            return False
    return True
