"""App containers that join their pod's pause container."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from pycri.api import api_pb2 as cri
from pycri.core.engine import (
    CONTAINER_KIND,
    EngineLabels,
    container_log_path,
    encode_labels,
)
from pycri.core.engine import exit_reason as reason_for
from pycri.core.engine_names import DOCKER_NAMES, container_name
from pycri.core.identity import process_user
from pycri.core.image_volumes import find_image_mounts
from pycri.core.rro_staging import (
    STAGED_LABEL,
    RROStaging,
    restore_mounts,
    staged_label,
    with_mounts,
)
from pycri.errors import CRIError, NotFoundError
from pycri_shims.docker.connection import DockerConnection
from pycri_shims.docker.convert import PROPAGATION_FROM_DOCKER, container_body, create
from pycri_shims.docker.convert import resources_update as docker_resources
from pycri_shims.docker.decode import (
    CREATED_AT,
    LOG_DIRECTORY,
    TTY,
    USER_IMAGE,
    container_metadata,
    container_state,
    created_at,
    docker_time_ns,
    kind_filter,
    labels_of,
    pod_metadata,
)
from pycri_shims.docker.image_volumes import ImageVolumes, reported_mounts
from pycri_shims.docker.lists import ListSnapshot
from pycri_shims.docker.logs import DockerLogs, prune_locks
from pycri_shims.docker.sandboxes import Sandboxes

__all__ = ["Containers"]

log = logging.getLogger(__name__)

#: how long StopContainer lets the log copier write a stopped container's last lines
LOG_DRAIN_SECONDS = 2.0
# Docker resource fields -> docker-py's update_container keywords
_UPDATE_KEYWORDS = {
    "CpuShares": "cpu_shares",
    "CpuPeriod": "cpu_period",
    "CpuQuota": "cpu_quota",
    "CpusetCpus": "cpuset_cpus",
    "CpusetMems": "cpuset_mems",
    "Memory": "mem_limit",
    "MemorySwap": "memswap_limit",
}


class _ImageLookup(Protocol):
    def image_status(self, image: str) -> cri.Image | None: ...


def _mounts(data: Mapping[str, Any]) -> list[cri.Mount]:
    return [
        cri.Mount(
            container_path=m.get("Destination", ""),
            host_path=m.get("Source", ""),
            readonly=not m.get("RW", True),
            selinux_relabel="z" in m.get("Mode", "").lower(),
            propagation=PROPAGATION_FROM_DOCKER.get(
                m.get("Propagation", ""), cri.PROPAGATION_PRIVATE
            ),
        )
        for m in data.get("Mounts") or []
        if m.get("Type") == "bind"
    ]


def _name(data: Mapping[str, Any]) -> str:
    return str(data.get("Name") or "").lstrip("/")


def _resources(host: Mapping[str, Any]) -> cri.ContainerResources:
    return cri.ContainerResources(
        linux=cri.LinuxContainerResources(
            cpu_period=host.get("CpuPeriod") or 0,
            cpu_quota=host.get("CpuQuota") or 0,
            cpu_shares=host.get("CpuShares") or 0,
            memory_limit_in_bytes=host.get("Memory") or 0,
            memory_swap_limit_in_bytes=max(0, host.get("MemorySwap") or 0),
            oom_score_adj=host.get("OomScoreAdj") or 0,
            cpuset_cpus=host.get("CpusetCpus") or "",
            cpuset_mems=host.get("CpusetMems") or "",
        )
    )


def _user(state: Mapping[str, Any]) -> cri.ContainerUser | None:
    """Who the init process runs as, from /proc while it runs; unset otherwise.

    Docker resolves the user (the image's /etc/passwd and /etc/group) when
    the container starts and records none of it, so only the process knows.
    """
    pid = int(state.get("Pid") or 0)
    if not state.get("Running") or pid <= 0:
        return None
    user = process_user(pid)
    return cri.ContainerUser(linux=user) if user is not None else None


def _stop_signal(config: Mapping[str, Any]) -> str:
    """The enum name of the image's or container's stop signal (names are valid values)."""
    name = str(config.get("StopSignal") or "")
    return name if name in cri.Signal.DESCRIPTOR.values_by_name else "RUNTIME_DEFAULT"


class Containers:
    """CreateContainer & co. for one shim."""

    def __init__(
        self,
        connection: DockerConnection,
        lists: ListSnapshot,
        sandboxes: Sandboxes,
        logs: DockerLogs,
        images: _ImageLookup,
        volumes: ImageVolumes,
        staging: RROStaging,
    ) -> None:
        self._staging = staging
        self._conn = connection
        self._lists = lists
        self._sandboxes = sandboxes
        self._logs = logs
        self._images = images
        self.volumes = volumes

    def create(
        self, pod_id: str, config: cri.ContainerConfig, sandbox_config: cri.PodSandboxConfig
    ) -> str:
        mounts = find_image_mounts(self._images, config)
        if not mounts:
            return self._create(pod_id, config, sandbox_config, {})
        with self.volumes.locked():  # no prune between the export and the container's labels
            try:
                config, extra = self.volumes.prepare(config, mounts)
                return self._create(pod_id, config, sandbox_config, extra)
            except BaseException:
                self.volumes.prune_locked()  # a tree exported for nothing goes at once
                raise

    def _create(
        self,
        pod_id: str,
        config: cri.ContainerConfig,
        sandbox_config: cri.PodSandboxConfig,
        image_labels: dict[str, str],
    ) -> str:
        sandbox = self._sandboxes.inspect(pod_id)
        pod = labels_of(sandbox)
        # the sandbox's own record wins: CreateContainer's sandbox_config is optional
        log_dir = pod.extra.get(LOG_DIRECTORY) or sandbox_config.log_directory
        name = container_name(config.metadata, pod_metadata(pod), DOCKER_NAMES)
        with self._staging.creating(name, config.mounts) as mounts:
            extra = {
                CREATED_AT: str(time.time_ns()),
                TTY: "1" if config.tty else "",
                USER_IMAGE: config.image.user_specified_image,
                STAGED_LABEL: staged_label(config.mounts, mounts),
                **image_labels,
            }
            labels = encode_labels(
                CONTAINER_KIND,
                config.metadata,
                config.labels,
                config.annotations,
                sandbox_id=pod_id,
                log_path=container_log_path(log_dir, config.log_path),
                extra={key: value for key, value in extra.items() if value},
            )
            body = container_body(
                with_mounts(config, mounts),
                sandbox_id=pod_id,
                sandbox_host=sandbox.get("HostConfig") or {},
                labels=labels,
            )
            with self._conn.errors(f"creating container {name}"):
                return create(self._conn.api, name, body)

    def inspect(self, container_id: str) -> Mapping[str, Any]:
        """Docker's inspect data of the container; NotFoundError for anything else."""
        try:
            data = self._conn.inspect(container_id, f"inspecting container {container_id[:13]}")
        except NotFoundError:
            data = {}
        if labels_of(data).kind != CONTAINER_KIND:
            raise NotFoundError(f"container {container_id[:13]} not found")
        return data

    def start(self, container_id: str) -> None:
        # read first: core has just inspected it (calls.py), and labels and name never change
        data = self.inspect(container_id)
        labels = labels_of(data)
        with self._conn.errors(f"starting container {container_id[:13]}"):
            self._conn.api.start(container_id)
        # runc has made the container's own copy of staged mounts: the host's can go
        self._staging.release_quietly(_name(data))
        self._logs.follow(container_id, labels.log_path, labels.extra.get(TTY) == "1")

    def stop(self, container_id: str, timeout: int) -> None:
        with self._conn.errors(f"stopping container {container_id[:13]}"):
            self._conn.api.stop(container_id, timeout=timeout)
        self._logs.drain_exited(container_id, LOG_DRAIN_SECONDS)

    def remove(self, container_id: str) -> None:
        self._logs.stop(container_id)
        # staged mounts of a container never started: its name is needed to find them
        name = _name(self.inspect(container_id)) if self._staging.staged() else ""
        with self._conn.errors(f"removing container {container_id[:13]}"):
            self._conn.api.remove_container(container_id, v=True, force=True)
        if name:
            self._staging.release_quietly(name)
        self._logs.forget(container_id)
        try:
            self.volumes.prune()
        except CRIError as err:  # the container is gone; the next removal prunes again
            log.warning("cannot prune image volumes: %s", err.message)

    def sweep_staging(self) -> None:
        """Release staged mounts no created container owns (left by a killed server)."""
        self._staging.sweep(self._created_names)

    def _created_names(self) -> set[str]:
        # every engine container, pycri's or not: a name is only ever staged for one
        with self._conn.errors("listing created containers"):
            found = self._conn.api.containers(all=True, filters={"status": ["created"]})
        return {str(n).lstrip("/") for entry in found for n in entry.get("Names") or []}

    def list(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        """One Docker call whatever the number of containers (see lists.py)."""
        filters = kind_filter(CONTAINER_KIND, hint.label_selector if hint else None)
        if hint is not None:
            if hint.id:
                filters["id"] = [hint.id]
            if len(hint.pod_sandbox_id) == 64:
                filters["label"].append(f"io.kubernetes.sandbox.id={hint.pod_sandbox_id}")
            if hint.HasField("state") and hint.state.state == cri.CONTAINER_RUNNING:
                filters["status"] = ["running"]
            elif hint.HasField("state") and hint.state.state == cri.CONTAINER_CREATED:
                filters["status"] = ["created"]
        items = []
        for entry in self._lists.entries(CONTAINER_KIND, filters):
            labels = labels_of(entry)
            item = self._item(entry, labels)
            if item.state == cri.CONTAINER_RUNNING and labels.log_path:
                # Self-healing: a copier cut off by a daemon outage restarts here (a no-op
                # while it runs), resuming from the CRI file without duplicates.
                self._logs.follow(item.id, labels.log_path, labels.extra.get(TTY) == "1")
            items.append(item)
        return items

    @staticmethod
    def _item(entry: Mapping[str, Any], labels: EngineLabels) -> cri.Container:
        return cri.Container(
            id=entry["Id"],
            pod_sandbox_id=labels.sandbox_id,
            metadata=container_metadata(labels),
            image=cri.ImageSpec(
                image=entry.get("Image", ""),
                user_specified_image=labels.extra.get(USER_IMAGE, ""),
            ),
            image_ref=entry.get("ImageID", ""),
            image_id=entry.get("ImageID", ""),
            state=container_state(entry.get("State", "")),
            created_at=created_at(labels, entry.get("Created")),
            labels=labels.labels,
            annotations=labels.annotations,
        )

    def status(
        self, container_id: str, verbose: bool
    ) -> tuple[cri.ContainerStatus, dict[str, str]]:
        data = self.inspect(container_id)
        labels = labels_of(data)
        state = data.get("State") or {}
        config = data.get("Config") or {}
        host = data.get("HostConfig") or {}
        cri_state = container_state(state.get("Status", ""))
        if cri_state == cri.CONTAINER_EXITED:
            # containerd's order: the CRI log holds what the container wrote
            # before anyone is told it exited (critest reads it at once)
            self._logs.drain_exited(container_id, LOG_DRAIN_SECONDS)
        exit_code = int(state.get("ExitCode") or 0)
        status = cri.ContainerStatus(
            id=data["Id"],
            metadata=container_metadata(labels),
            state=cri_state,
            created_at=created_at(labels, data.get("Created")),
            started_at=docker_time_ns(state.get("StartedAt")),
            finished_at=docker_time_ns(state.get("FinishedAt")),
            exit_code=exit_code,
            image=cri.ImageSpec(
                image=config.get("Image", ""), user_specified_image=labels.extra.get(USER_IMAGE, "")
            ),
            image_ref=data.get("Image", ""),
            image_id=data.get("Image", ""),
            reason=(
                reason_for(exit_code, bool(state.get("OOMKilled")))
                if cri_state == cri.CONTAINER_EXITED
                else ""
            ),
            message=state.get("Error") or "",
            labels=labels.labels,
            annotations=labels.annotations,
            mounts=reported_mounts(
                labels.extra,
                restore_mounts(_mounts(data), labels.extra.get(STAGED_LABEL, "")),
            ),
            log_path=labels.log_path,
            resources=_resources(host),
            user=_user(state),
            stop_signal=_stop_signal(config),
        )
        info: dict[str, str] = {}
        if verbose:
            info["info"] = json.dumps(
                {
                    "sandboxID": labels.sandbox_id,
                    "pid": state.get("Pid", 0),
                    "name": data.get("Name", "").lstrip("/"),
                    "logPath": labels.log_path,
                    "dockerLogPath": data.get("LogPath", ""),
                    "config": {k: config.get(k) for k in ("Entrypoint", "Cmd", "Env", "User")},
                    "dockerState": state,
                }
            )
        return status, info

    def update_resources(
        self, container_id: str, linux: cri.LinuxContainerResources | None
    ) -> None:
        if linux is None:
            return
        wanted = {_UPDATE_KEYWORDS[k]: v for k, v in docker_resources(linux).items()}
        if wanted:
            with self._conn.errors(f"updating the resources of {container_id[:13]}"):
                self._conn.api.update_container(container_id, **wanted)

    def reopen_log(self, container_id: str) -> None:
        if self._logs.reopen(container_id):
            return
        # No live copier (say, cut off by an outage): start one that writes only
        # what comes from now on, since the old file was just rotated away.
        labels = labels_of(self.inspect(container_id))
        if labels.log_path:
            path = Path(labels.log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()  # the caller expects the file back when the call returns
            self._logs.follow(
                container_id, labels.log_path, labels.extra.get(TTY) == "1", from_now=True
            )

    def resume_logs(self) -> None:
        """Start copiers for every container with a log path (after start-up or an outage)."""
        with self._conn.errors("listing containers to resume their logs"):
            entries: list[Mapping[str, Any]] = self._conn.api.containers(
                all=True, filters=kind_filter(CONTAINER_KIND)
            )
        for entry in entries:
            labels = labels_of(entry)
            if labels.log_path and entry.get("State") != "created":
                self._logs.follow(entry["Id"], labels.log_path, labels.extra.get(TTY) == "1")
        prune_locks({entry["Id"] for entry in entries})
