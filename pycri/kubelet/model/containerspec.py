"""Read a Pod spec's ``containers[]`` and ``initContainers[]`` into :mod:`.spec` objects.

:mod:`pycri.kubelet.model.podspec` reads the pod around it and hands each
container here, with the names of the pod's volumes its mounts may use.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any, cast

from pycri.core.images import parse_reference
from pycri.errors import InvalidArgumentError
from pycri.kubelet.model.fields import Fields, join
from pycri.kubelet.model.quantity import parse_cpu_millis, parse_quantity
from pycri.kubelet.model.spec import (
    Container,
    ContainerPort,
    EnvVar,
    ExecProbe,
    PullPolicy,
    Resources,
    SecurityContext,
    VolumeMount,
)

__all__ = ["FIELD_PATHS", "ContainerSpecReader"]

#: ``env[].valueFrom.fieldRef.fieldPath`` values the kubelet can fill in
FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "status.podIP",
    "status.hostIP",
)
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_CONTAINER_FIELDS = (
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "workingDir",
    "ports",
    "volumeMounts",
    "resources",
    "securityContext",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "stdin",
    "tty",
)
_CONTAINER_UNSUPPORTED = {
    "envFrom": "ConfigMaps and Secrets do not exist without an API server",
    "lifecycle": "postStart/preStop hooks are not supported",
    "terminationMessagePath": "termination messages are not collected",
    "terminationMessagePolicy": "termination messages are not collected",
}
_PROBE_FIELDS = (
    "exec",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
)


class ContainerSpecReader:
    """Reads containers; problems go to ``fields``."""

    def __init__(self, fields: Fields) -> None:
        self.f = fields

    def containers(
        self, value: Any, path: str, volumes: set[str], *, init: bool = True
    ) -> tuple[Container, ...]:
        return tuple(
            self.container(obj, where, volumes, init) for where, obj in self.f.items(value, path)
        )

    def container(
        self, obj: Mapping[str, Any], path: str, volumes: set[str], init: bool
    ) -> Container:
        f = self.f
        unsupported = dict(_CONTAINER_UNSUPPORTED)
        f.known(obj, path, (*_CONTAINER_FIELDS, "restartPolicy"), unsupported)
        name = f.string(obj, "name", path, required=True)
        f.dns_label(name, join(path, "name"))
        image = f.string(obj, "image", path, required=True)
        tag = ""
        if image:
            try:
                ref = parse_reference(image)
                tag = ref.tag or ""
            except InvalidArgumentError as err:
                f.error(join(path, "image"), err.message)
        if init and obj.get("restartPolicy") is not None:
            f.error(join(path, "restartPolicy"), "sidecar init containers are not supported")
        elif obj.get("restartPolicy") is not None:
            f.error(join(path, "restartPolicy"), "only init containers may set a restartPolicy")
        default_policy = "Always" if tag in ("", "latest") and "@" not in image else "IfNotPresent"
        policy = f.choice(
            obj, "imagePullPolicy", path, ("Always", "IfNotPresent", "Never"), default_policy
        )
        working_dir = f.string(obj, "workingDir", path)
        if working_dir and not working_dir.startswith("/"):
            f.error(join(path, "workingDir"), f"{working_dir!r} must be an absolute path")
        probes = {
            key: self.probe(obj.get(key), join(path, key), key)
            for key in ("livenessProbe", "readinessProbe", "startupProbe")
        }
        if init:
            for key, probe in probes.items():
                if probe is not None:
                    f.error(join(path, key), "may not be set for init containers")
        return Container(
            name=name,
            image=image,
            image_pull_policy=cast(PullPolicy, policy),
            command=f.strings(obj, "command", path),
            args=f.strings(obj, "args", path),
            env=self.env(obj.get("env"), join(path, "env")),
            working_dir=working_dir,
            ports=self.ports(obj.get("ports"), join(path, "ports")),
            volume_mounts=self.mounts(obj.get("volumeMounts"), join(path, "volumeMounts"), volumes),
            resources=self.resources(obj.get("resources"), join(path, "resources")),
            security_context=self.security(
                obj.get("securityContext"), join(path, "securityContext")
            ),
            liveness_probe=None if init else probes["livenessProbe"],
            readiness_probe=None if init else probes["readinessProbe"],
            startup_probe=None if init else probes["startupProbe"],
            stdin=f.boolean(obj, "stdin", path),
            tty=f.boolean(obj, "tty", path),
            raw=dict(obj),
        )

    def env(self, value: Any, path: str) -> tuple[EnvVar, ...]:
        f = self.f
        out = []
        for where, obj in f.items(value, path):
            f.known(obj, where, ("name", "value", "valueFrom"))
            name = f.string(obj, "name", where, required=True)
            if name and not _ENV_NAME.match(name):
                f.error(join(where, "name"), f"invalid environment variable name {name!r}")
            if "valueFrom" not in obj:
                out.append(EnvVar(name, f.string(obj, "value", where)))
                continue
            source = f.mapping(obj["valueFrom"], join(where, "valueFrom"))
            ref = f.mapping(source.get("fieldRef"), join(where, "valueFrom.fieldRef"))
            field_path = f.string(ref, "fieldPath", join(where, "valueFrom.fieldRef"))
            others = [key for key in source if key != "fieldRef"]
            if others:
                f.warn(
                    join(where, f"valueFrom.{others[0]}"),
                    f"ignored: only fieldRef is supported, so {name} is not set",
                )
            elif field_path not in FIELD_PATHS:
                f.warn(
                    join(where, "valueFrom.fieldRef.fieldPath"),
                    f"ignored: {field_path!r} is not one of {', '.join(FIELD_PATHS)}, "
                    f"so {name} is not set",
                )
            else:
                out.append(EnvVar(name, field_path=field_path))
        return tuple(out)

    def ports(self, value: Any, path: str) -> tuple[ContainerPort, ...]:
        f = self.f
        out = []
        for where, obj in f.items(value, path):
            f.known(obj, where, ("containerPort", "hostPort", "protocol", "hostIP", "name"))
            if obj.get("containerPort") is None:
                f.error(join(where, "containerPort"), "required value")
            port = ContainerPort(
                container_port=f.integer(obj, "containerPort", where, 0, minimum=1, maximum=65535),
                host_port=f.integer(obj, "hostPort", where, 0, minimum=0, maximum=65535),
                protocol=f.choice(obj, "protocol", where, ("TCP", "UDP", "SCTP"), "TCP"),
                host_ip=f.string(obj, "hostIP", where),
                name=f.string(obj, "name", where),
            )
            out.append(port)
        return tuple(out)

    def mounts(self, value: Any, path: str, volumes: set[str]) -> tuple[VolumeMount, ...]:
        f = self.f
        out = []
        seen: set[str] = set()
        for where, obj in f.items(value, path):
            f.known(
                obj,
                where,
                ("name", "mountPath", "readOnly", "subPath", "mountPropagation"),
                {"subPathExpr": "not supported by pycri-kubelet"},
            )
            name = f.string(obj, "name", where, required=True)
            if name and name not in volumes:
                f.error(join(where, "name"), f"not found: no volume named {name!r}")
            mount_path = f.string(obj, "mountPath", where, required=True)
            if mount_path and not mount_path.startswith("/"):
                f.error(join(where, "mountPath"), f"{mount_path!r} must be an absolute path")
            if mount_path in seen:
                f.error(join(where, "mountPath"), f"{mount_path!r} must be unique")
            seen.add(mount_path)
            sub_path = f.string(obj, "subPath", where)
            if sub_path and (sub_path.startswith("/") or ".." in sub_path.split("/")):
                f.error(join(where, "subPath"), "must be a relative path without '..'")
            out.append(
                VolumeMount(
                    name=name,
                    mount_path=posixpath.normpath(mount_path) if mount_path else "",
                    read_only=f.boolean(obj, "readOnly", where),
                    sub_path=sub_path,
                    propagation=f.choice(
                        obj,
                        "mountPropagation",
                        where,
                        ("None", "HostToContainer", "Bidirectional"),
                        "None",
                    ),
                )
            )
        return tuple(out)

    def resources(self, value: Any, path: str) -> Resources:
        f = self.f
        obj = f.mapping(value, path)
        f.known(obj, path, ("requests", "limits"))
        amounts: dict[str, dict[str, int]] = {}
        for group in ("requests", "limits"):
            where = join(path, group)
            values = f.mapping(obj.get(group), where)
            amounts[group] = {}
            for key, raw in values.items():
                if key not in ("cpu", "memory"):
                    f.warn(join(where, str(key)), "ignored: only cpu and memory are supported")
                    continue
                try:
                    amounts[group][key] = (
                        parse_cpu_millis(raw) if key == "cpu" else int(parse_quantity(raw))
                    )
                except ValueError as err:
                    f.error(join(where, key), str(err))
        requests, limits = amounts["requests"], amounts["limits"]
        for key, request in requests.items():
            if key in limits and request > limits[key]:
                f.error(
                    join(join(path, "requests"), key), f"must be less than or equal to {key} limit"
                )
        return Resources(
            # an unset request defaults to the limit, as the API server does
            cpu_request_millis=requests.get("cpu", limits.get("cpu")),
            cpu_limit_millis=limits.get("cpu"),
            memory_request_bytes=requests.get("memory", limits.get("memory")),
            memory_limit_bytes=limits.get("memory"),
        )

    def security(self, value: Any, path: str) -> SecurityContext:
        f = self.f
        obj = f.mapping(value, path)
        f.known(
            obj,
            path,
            (
                "runAsUser",
                "runAsGroup",
                "runAsNonRoot",
                "privileged",
                "readOnlyRootFilesystem",
                "allowPrivilegeEscalation",
                "capabilities",
            ),
        )
        caps = f.mapping(obj.get("capabilities"), join(path, "capabilities"))
        f.known(caps, join(path, "capabilities"), ("add", "drop"))
        privileged = f.boolean(obj, "privileged", path)
        escalation = f.optional_bool(obj, "allowPrivilegeEscalation", path)
        if privileged and escalation is False:
            f.error(
                join(path, "allowPrivilegeEscalation"),
                "cannot set allowPrivilegeEscalation to false and privileged to true",
            )
        return SecurityContext(
            run_as_user=f.optional_int(obj, "runAsUser", path),
            run_as_group=f.optional_int(obj, "runAsGroup", path),
            run_as_non_root=f.optional_bool(obj, "runAsNonRoot", path),
            privileged=privileged,
            read_only_root_filesystem=f.boolean(obj, "readOnlyRootFilesystem", path),
            allow_privilege_escalation=escalation,
            capabilities_add=f.strings(caps, "add", join(path, "capabilities")),
            capabilities_drop=f.strings(caps, "drop", join(path, "capabilities")),
        )

    def probe(self, value: Any, path: str, key: str) -> ExecProbe | None:
        f = self.f
        if value is None:
            return None
        obj = f.mapping(value, path)
        handlers = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if k in obj]
        f.known(obj, path, (*_PROBE_FIELDS, "httpGet", "tcpSocket", "grpc"))
        if not handlers:
            f.error(path, "must specify a handler type (exec)")
            return None
        if len(handlers) > 1:
            f.error(path, f"may not specify more than one handler type ({', '.join(handlers)})")
            return None
        if handlers[0] != "exec":
            f.warn(
                join(path, handlers[0]),
                "ignored: only exec probes are supported, so this probe is not run",
            )
            return None
        action = f.mapping(obj.get("exec"), join(path, "exec"))
        f.known(action, join(path, "exec"), ("command",))
        command = f.strings(action, "command", join(path, "exec"))
        if not action.get("command"):
            f.error(join(path, "exec.command"), "required value")
        success = f.integer(obj, "successThreshold", path, 1, minimum=1)
        if key != "readinessProbe" and success != 1:
            f.error(join(path, "successThreshold"), "must be 1 for liveness and startup probes")
        return ExecProbe(
            command=command,
            initial_delay_seconds=f.integer(obj, "initialDelaySeconds", path, 0, minimum=0),
            period_seconds=f.integer(obj, "periodSeconds", path, 10, minimum=1),
            timeout_seconds=f.integer(obj, "timeoutSeconds", path, 1, minimum=1),
            success_threshold=success,
            failure_threshold=f.integer(obj, "failureThreshold", path, 3, minimum=1),
        )
