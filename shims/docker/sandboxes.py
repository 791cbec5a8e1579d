"""Pod sandboxes as pause containers (the dockershim way)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf import json_format

from pycri.api import api_pb2 as cri
from pycri.core.engine import SANDBOX_KIND, encode_labels
from pycri.core.engine_names import DOCKER_NAMES, sandbox_name
from pycri.core.images import SharedPull
from pycri.errors import CRIError, FailedPreconditionError, NotFoundError, UnavailableError
from pycri_shims.docker.connection import DockerConnection
from pycri_shims.docker.convert import create, sandbox_body
from pycri_shims.docker.decode import (
    CREATED_AT,
    LOG_DIRECTORY,
    NAMESPACES,
    RUNTIME_HANDLER,
    created_at,
    kind_filter,
    labels_of,
    pod_metadata,
    sandbox_state,
)
from pycri_shims.docker.lists import ListSnapshot

__all__ = ["DEFAULT_PAUSE_IMAGE", "Sandboxes"]

DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
#: the pause process exits on SIGTERM at once; this only bounds a stuck one
STOP_TIMEOUT = 10


def _network(data: Mapping[str, Any]) -> cri.PodSandboxNetworkStatus:
    settings = data.get("NetworkSettings") or {}
    if (data.get("HostConfig") or {}).get("NetworkMode") == "host":
        return cri.PodSandboxNetworkStatus()  # the node's IP; the kubelet knows it
    networks = list((settings.get("Networks") or {}).values())
    ip = settings.get("IPAddress") or next(
        (n["IPAddress"] for n in networks if n.get("IPAddress")), ""
    )
    ipv6 = settings.get("GlobalIPv6Address") or next(
        (n["GlobalIPv6Address"] for n in networks if n.get("GlobalIPv6Address")), ""
    )
    if not ip and ipv6:
        ip, ipv6 = ipv6, ""
    extra = [cri.PodIP(ip=ipv6)] if ipv6 else []
    return cri.PodSandboxNetworkStatus(ip=ip, additional_ips=extra)


def _namespaces(text: str) -> cri.LinuxPodSandboxStatus:
    options = json_format.Parse(text or "{}", cri.NamespaceOption())
    return cri.LinuxPodSandboxStatus(namespaces=cri.Namespace(options=options))


class Sandboxes:
    """RunPodSandbox & co. for one shim; ``pull`` fetches a missing pause image."""

    def __init__(
        self,
        connection: DockerConnection,
        lists: ListSnapshot,
        pause_image: str,
        pull: Callable[[str], object],
    ) -> None:
        self._conn = connection
        self._lists = lists
        self.pause_image = pause_image
        self._pull = pull
        #: one pull of a missing pause image for all the pods that found it missing
        self._pause_pull = SharedPull(self._pull_pause_image)

    def run(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        ns = json_format.MessageToDict(config.linux.security_context.namespace_options)
        extra = {
            CREATED_AT: str(time.time_ns()),
            LOG_DIRECTORY: config.log_directory,
            RUNTIME_HANDLER: runtime_handler,
            NAMESPACES: json.dumps(ns, sort_keys=True, separators=(",", ":")),
        }
        labels = encode_labels(
            SANDBOX_KIND,
            config.metadata,
            config.labels,
            config.annotations,
            extra={key: value for key, value in extra.items() if value},
        )
        body = sandbox_body(config, image=self.pause_image, labels=labels)
        name = sandbox_name(config.metadata, DOCKER_NAMES)
        what = f"creating pod sandbox {name}"
        seen = self._pause_pull.attempts
        try:
            with self._conn.errors(what):
                pod_id = create(self._conn.api, name, body)
        except NotFoundError:
            # Docker's 404 here means the image: pull the pause image once, then retry.
            self._pause_pull.pull(seen)
            with self._conn.errors(what):
                pod_id = create(self._conn.api, name, body)
        try:
            with self._conn.errors(f"starting pod sandbox {name}"):
                self._conn.api.start(pod_id)
        except Exception:
            with self._conn.errors(f"removing pod sandbox {name} that failed to start"):
                self._conn.api.remove_container(pod_id, v=True, force=True)
            raise
        return pod_id

    def _pull_pause_image(self) -> None:
        # the CRI sends no credentials for it: Docker's own config applies (pull_image)
        try:
            self._pull(self.pause_image)
        except UnavailableError:
            raise  # dockerd is down: not the image's fault
        except CRIError as err:
            raise FailedPreconditionError(
                f"the pause image {self.pause_image} is not in Docker's image store and "
                f"cannot be pulled ({err.message}); load it (docker load / docker import), "
                "let dockerd reach its registry (docker login for credentials, "
                "--insecure-registry for plain HTTP), or choose another with "
                "--shim-option pause_image=REF"
            ) from err

    def inspect(self, pod_id: str) -> Mapping[str, Any]:
        """Docker's inspect data of the sandbox; NotFoundError for anything else."""
        try:
            data = self._conn.inspect(pod_id, f"inspecting pod sandbox {pod_id[:13]}")
        except NotFoundError:
            data = {}
        if labels_of(data).kind != SANDBOX_KIND:
            raise NotFoundError(f"pod sandbox {pod_id[:13]} not found")
        return data

    def stop(self, pod_id: str) -> None:
        self.inspect(pod_id)
        with self._conn.errors(f"stopping pod sandbox {pod_id[:13]}"):
            self._conn.api.stop(pod_id, timeout=STOP_TIMEOUT)

    def remove(self, pod_id: str) -> None:
        self.inspect(pod_id)
        with self._conn.errors(f"removing pod sandbox {pod_id[:13]}"):
            self._conn.api.remove_container(pod_id, v=True, force=True)

    def status(self, pod_id: str, verbose: bool) -> tuple[cri.PodSandboxStatus, dict[str, str]]:
        data = self.inspect(pod_id)
        labels = labels_of(data)
        state = sandbox_state(data["State"]["Status"])
        status = cri.PodSandboxStatus(
            id=data["Id"],
            metadata=pod_metadata(labels),
            state=state,
            created_at=created_at(labels, data.get("Created")),
            network=_network(data) if state == cri.SANDBOX_READY else None,
            linux=_namespaces(labels.extra.get(NAMESPACES, "")),
            labels=labels.labels,
            annotations=labels.annotations,
            runtime_handler=labels.extra.get(RUNTIME_HANDLER, ""),
        )
        info: dict[str, str] = {}
        if verbose:
            host = data.get("HostConfig") or {}
            info["info"] = json.dumps(
                {
                    "pid": data["State"].get("Pid", 0),
                    "image": (data.get("Config") or {}).get("Image", ""),
                    "name": data.get("Name", "").lstrip("/"),
                    "networkMode": host.get("NetworkMode", ""),
                    "ipcMode": host.get("IpcMode", ""),
                    "pidMode": host.get("PidMode", ""),
                    "resolvConfPath": data.get("ResolvConfPath", ""),
                    "dockerState": data["State"],
                }
            )
        return status, info

    def list(self, hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        """One Docker call whatever the number of pods (see lists.py); the hint narrows it."""
        filters = kind_filter(SANDBOX_KIND, hint.label_selector if hint else None)
        if hint is not None and hint.id:
            filters["id"] = [hint.id]
        if hint is not None and hint.HasField("state") and hint.state.state == cri.SANDBOX_READY:
            filters["status"] = ["running"]
        return [self._item(entry) for entry in self._lists.entries(SANDBOX_KIND, filters)]

    @staticmethod
    def _item(entry: Mapping[str, Any]) -> cri.PodSandbox:
        labels = labels_of(entry)
        return cri.PodSandbox(
            id=entry["Id"],
            metadata=pod_metadata(labels),
            state=sandbox_state(entry.get("State", "")),
            created_at=created_at(labels, entry.get("Created")),
            labels=labels.labels,
            annotations=labels.annotations,
            runtime_handler=labels.extra.get(RUNTIME_HANDLER, ""),
        )
