"""Read a Pod's ``spec`` (or a Deployment's ``spec.template.spec``) into :mod:`.spec` objects.

The pod-level fields are read here; each container is read by
:mod:`pycri.kubelet.model.containerspec`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, cast

from pycri.kubelet.model.containerspec import ContainerSpecReader
from pycri.kubelet.model.fields import Fields, join
from pycri.kubelet.model.spec import (
    DNSConfig,
    PodSecurityContext,
    PodSpec,
    RestartPolicy,
    Volume,
)

__all__ = ["read_pod_spec"]

_HOST_PATH_TYPES = (
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
)
_SCHEDULING = "scheduling does not apply: this kubelet runs every pod it is given"
_POD_UNSUPPORTED = {
    "nodeSelector": _SCHEDULING,
    "affinity": _SCHEDULING,
    "tolerations": _SCHEDULING,
    "schedulerName": _SCHEDULING,
    "priority": _SCHEDULING,
    "priorityClassName": _SCHEDULING,
    "preemptionPolicy": _SCHEDULING,
    "topologySpreadConstraints": _SCHEDULING,
    "schedulingGates": _SCHEDULING,
    "serviceAccountName": "there is no API server, so no service account token",
    "serviceAccount": "there is no API server, so no service account token",
    "automountServiceAccountToken": "there is no API server, so no service account token",
    "enableServiceLinks": "there are no services",
    "imagePullSecrets": "registry credentials are not supported",
    "subdomain": "there is no cluster DNS",
    "hostAliases": "not supported by pycri-kubelet",
    "readinessGates": "not supported by pycri-kubelet",
    "activeDeadlineSeconds": "not supported by pycri-kubelet",
}
_POD_FIELDS = (
    "containers",
    "initContainers",
    "volumes",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "hostname",
    "dnsPolicy",
    "dnsConfig",
    "securityContext",
    "nodeName",
    "runtimeClassName",
)


class _PodSpecReader:
    def __init__(self, fields: Fields, node: str) -> None:
        self.f = fields
        self.node = node
        self.container_reader = ContainerSpecReader(fields)

    def pod_spec(self, spec: Mapping[str, Any], path: str) -> PodSpec:
        f = self.f
        f.known(spec, path, _POD_FIELDS, _POD_UNSUPPORTED)
        volumes = self.volumes(spec.get("volumes"), join(path, "volumes"))
        names = {v.name for v in volumes}
        init = self.container_reader.containers(
            spec.get("initContainers"), join(path, "initContainers"), names
        )
        app = self.container_reader.containers(
            spec.get("containers"), join(path, "containers"), names, init=False
        )
        if spec.get("containers") is None:
            f.error(join(path, "containers"), "required value")
        elif spec.get("containers") == []:
            f.error(join(path, "containers"), "must have at least one container")
        seen: set[str] = set()
        for kind, group in (("initContainers", init), ("containers", app)):
            for index, container in enumerate(group):
                if container.name in seen:
                    f.error(
                        join(join(join(path, kind), index), "name"),
                        f"duplicate value {container.name!r}",
                    )
                seen.add(container.name)
        node_name = f.string(spec, "nodeName", path)
        if node_name and self.node and node_name != self.node:
            f.warn(
                join(path, "nodeName"),
                f"ignored: names node {node_name!r}, but this kubelet is {self.node!r}",
            )
        hostname = f.string(spec, "hostname", path)
        f.dns_label(hostname, join(path, "hostname"))
        dns_policy = f.choice(
            spec,
            "dnsPolicy",
            path,
            ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
            "ClusterFirst",
        )
        dns_config = self.dns_config(spec.get("dnsConfig"), join(path, "dnsConfig"))
        if dns_policy == "None" and dns_config is None:
            f.error(join(path, "dnsConfig"), "required when dnsPolicy is None")
        host_pid = f.boolean(spec, "hostPID", path)
        share = f.boolean(spec, "shareProcessNamespace", path)
        if host_pid and share:
            f.error(join(path, "shareProcessNamespace"), "may not be true when hostPID is true")
        restart = f.choice(spec, "restartPolicy", path, ("Always", "OnFailure", "Never"), "Always")
        return PodSpec(
            containers=app,
            init_containers=init,
            volumes=volumes,
            restart_policy=cast(RestartPolicy, restart),
            termination_grace_period_seconds=f.integer(
                spec, "terminationGracePeriodSeconds", path, 30, minimum=0
            ),
            host_network=f.boolean(spec, "hostNetwork", path),
            host_pid=host_pid,
            host_ipc=f.boolean(spec, "hostIPC", path),
            share_process_namespace=share,
            hostname=hostname,
            dns_policy=dns_policy,
            dns_config=dns_config,
            security_context=self.pod_security(
                spec.get("securityContext"), join(path, "securityContext")
            ),
            runtime_class_name=f.string(spec, "runtimeClassName", path),
        )

    def pod_security(self, value: Any, path: str) -> PodSecurityContext:
        f = self.f
        obj = f.mapping(value, path)
        f.known(
            obj,
            path,
            ("runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "sysctls"),
        )
        groups = []
        raw_groups = obj.get("supplementalGroups") or []
        if not isinstance(raw_groups, list):
            f.error(join(path, "supplementalGroups"), "must be a list of integers")
            raw_groups = []
        for index, group in enumerate(raw_groups):
            if isinstance(group, bool) or not isinstance(group, int) or group < 0:
                f.error(join(join(path, "supplementalGroups"), index), "must be a group id")
            else:
                groups.append(group)
        sysctls = []
        for where, item in f.items(obj.get("sysctls"), join(path, "sysctls")):
            f.known(item, where, ("name", "value"))
            sysctls.append(
                (f.string(item, "name", where, required=True), f.string(item, "value", where))
            )
        return PodSecurityContext(
            run_as_user=f.optional_int(obj, "runAsUser", path),
            run_as_group=f.optional_int(obj, "runAsGroup", path),
            run_as_non_root=f.optional_bool(obj, "runAsNonRoot", path),
            fs_group=f.optional_int(obj, "fsGroup", path),
            supplemental_groups=tuple(groups),
            sysctls=tuple(sysctls),
        )

    # -- pod-level -------------------------------------------------------------------

    def volumes(self, value: Any, path: str) -> tuple[Volume, ...]:
        f = self.f
        out = []
        seen: set[str] = set()
        for where, obj in f.items(value, path):
            name = f.string(obj, "name", where, required=True)
            f.dns_label(name, join(where, "name"))
            if name in seen:
                f.error(join(where, "name"), f"duplicate value {name!r}")
            seen.add(name)
            types = [key for key in obj if key != "name"]
            if len(types) > 1:
                f.error(where, f"may not specify more than one volume type ({', '.join(types)})")
            kind = types[0] if types else "emptyDir"
            if kind == "hostPath":
                source = f.mapping(obj["hostPath"], join(where, "hostPath"))
                f.known(source, join(where, "hostPath"), ("path", "type"))
                host_path = f.string(source, "path", join(where, "hostPath"), required=True)
                if host_path and not host_path.startswith("/"):
                    f.error(join(where, "hostPath.path"), f"{host_path!r} must be absolute")
                host_type = f.string(source, "type", join(where, "hostPath"))
                if host_type and host_type not in _HOST_PATH_TYPES:
                    f.error(
                        join(where, "hostPath.type"),
                        f"unsupported value {host_type!r}: one of {', '.join(_HOST_PATH_TYPES)}",
                    )
                out.append(Volume(name, "hostPath", host_path, host_type))
                continue
            if kind == "emptyDir":
                source = f.mapping(obj.get("emptyDir"), join(where, "emptyDir"))
                f.known(
                    source,
                    join(where, "emptyDir"),
                    (),
                    {
                        "medium": "the volume is a directory on the node's disk",
                        "sizeLimit": "the size is not limited",
                    },
                )
            else:
                f.warn(
                    join(where, kind),
                    "ignored: only emptyDir and hostPath volumes are supported; "
                    "the volume is an empty directory",
                )
            out.append(Volume(name, "emptyDir"))
        return tuple(out)

    def dns_config(self, value: Any, path: str) -> DNSConfig | None:
        f = self.f
        if value is None:
            return None
        obj = f.mapping(value, path)
        f.known(obj, path, ("nameservers", "searches", "options"))
        servers = f.strings(obj, "nameservers", path)
        for index, server in enumerate(servers):
            try:
                ipaddress.ip_address(server)
            except ValueError:
                f.error(join(join(path, "nameservers"), index), f"{server!r} is not an IP address")
        if len(servers) > 3:
            f.error(join(path, "nameservers"), "must not have more than 3 nameservers")
        options = []
        for where, item in f.items(obj.get("options"), join(path, "options")):
            f.known(item, where, ("name", "value"))
            name = f.string(item, "name", where, required=True)
            option_value = f.string(item, "value", where)
            options.append(f"{name}:{option_value}" if option_value else name)
        return DNSConfig(servers, f.strings(obj, "searches", path), tuple(options))


def read_pod_spec(value: Any, path: str, fields: Fields, node: str = "") -> PodSpec:
    """The PodSpec at ``path``; problems go to ``fields``."""
    reader = _PodSpecReader(fields, node)
    return reader.pod_spec(fields.mapping(value, path), path)
