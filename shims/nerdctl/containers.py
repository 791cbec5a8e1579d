"""Containers on containerd: ``nerdctl create`` into a pod's namespaces, and their lifecycle.

Create/Start/Stop/Remove are one nerdctl process each; List and core's
lookups none while the container view is fresh (view.py), Status none
while the view has kept the container's inspect (memo.py). Each waits
until the view has seen its own effect, so the very next List shows it.
What nerdctl 1.7 does not report (when the task started, an OOM kill, the
user of a stopped container) comes from runc's state and cgroup files
(host.py), the stored spec's user from one ``inspect --mode native`` kept
per container. The CRI log of each container is copied from nerdctl's
json log (logs.py).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.core.engine import (
    CONTAINER_KIND,
    KIND_LABEL,
    SANDBOX_ID_LABEL,
    container_log_path,
    encode_labels,
)
from pycri.core.engine_names import CONTAINERD_NAMES, container_name
from pycri.core.identity import process_user
from pycri.core.image_volumes import find_image_mounts
from pycri.core.images import is_image_id
from pycri.core.rro_staging import RROStaging, with_mounts
from pycri.core.security import container_security
from pycri.errors import CRIError, NotFoundError
from pycri_shims.nerdctl import args as build
from pycri_shims.nerdctl import convert, specedit
from pycri_shims.nerdctl import labels as labelcodec
from pycri_shims.nerdctl.cni import PodNetwork
from pycri_shims.nerdctl.events import gone, not_running, started
from pycri_shims.nerdctl.host import Cgroups, RuncState
from pycri_shims.nerdctl.image_volumes import ImageVolumes, with_image_refs
from pycri_shims.nerdctl.images import ImageStore
from pycri_shims.nerdctl.logs import LogFollowers
from pycri_shims.nerdctl.lookup import Lookup
from pycri_shims.nerdctl.options import NerdctlOptions
from pycri_shims.nerdctl.sandboxes import check_label_keys, run_or_clean
from pycri_shims.nerdctl.timestamps import to_ns

__all__ = ["Containers"]

log = logging.getLogger(__name__)


class Containers:
    """Create/Start/Stop/Remove/Status/List Container, UpdateContainerResources,
    ReopenContainerLog, and what a restarted server resumes of them."""

    def __init__(
        self,
        lookup: Lookup,
        options: NerdctlOptions,
        images: ImageStore,
        volumes: ImageVolumes,
        staging: RROStaging,
        logs: LogFollowers,
        network: PodNetwork,
        cgroups: Cgroups,
    ) -> None:
        self.lookup = lookup
        self.runner = lookup.runner
        self.view = lookup.view
        self.options = options
        self.images = images
        self.volumes = volumes
        self.staging = staging
        self.logs = logs
        self.network = network
        self.cgroups = cgroups
        self._lock = threading.Lock()
        self._nerdctl_major: int | None = None
        #: the stored spec's user of each container (never changes after create)
        self._spec_users: dict[str, cri.LinuxContainerUser | None] = {}
        self._wrapper: str | None = None

    # -- create ------------------------------------------------------------------

    def create(
        self, pod_id: str, config: cri.ContainerConfig, sandbox_config: cri.PodSandboxConfig
    ) -> str:
        check_label_keys(config.labels, config.annotations)
        image_mounts = find_image_mounts(self.images, config)
        if not image_mounts:
            return self._create_with_image(pod_id, config, sandbox_config)
        name = container_name(config.metadata, sandbox_config.metadata, CONTAINERD_NAMES)
        with self.volumes.locked():  # no prune between the mounts and the container
            engine_config = self.volumes.mount(name, config, image_mounts)
            try:
                reported = with_image_refs(config, image_mounts).mounts
                return self._create_with_image(pod_id, engine_config, sandbox_config, reported)
            except BaseException:
                self.volumes.release(name)
                raise

    def _create_with_image(
        self,
        pod_id: str,
        config: cri.ContainerConfig,
        sandbox_config: cri.PodSandboxConfig,
        reported_mounts: Sequence[cri.Mount] = (),
    ) -> str:
        """CreateContainer once image mounts are binds; ``reported_mounts`` as requested."""
        requested = config.image.image
        image = self.images.kept_status(requested)
        if image is None:
            raise NotFoundError(
                f"image {requested!r} not found in containerd namespace {self.options.namespace}"
            )
        # nerdctl creates from a name: an id is replaced by one of its tags
        image_name = requested
        if is_image_id(requested):
            if not image.repo_tags:
                raise NotFoundError(f"image {requested!r} has no name nerdctl can create from")
            image_name = image.repo_tags[0]
        name = container_name(config.metadata, sandbox_config.metadata, CONTAINERD_NAMES)
        with self.staging.creating(name, config.mounts) as mounts:
            engine_config = with_mounts(config, mounts)
            return self._create(
                pod_id,
                engine_config,
                reported_mounts or config.mounts,
                sandbox_config,
                name,
                image,
                image_name,
            )

    def _create(
        self,
        pod_id: str,
        config: cri.ContainerConfig,
        reported_mounts: Sequence[cri.Mount],
        sandbox_config: cri.PodSandboxConfig,
        name: str,
        image: cri.Image,
        image_name: str,
    ) -> str:
        """``nerdctl create``; ``config`` has the mounts nerdctl gets (staged ones and
        image volumes swapped for binds), ``reported_mounts`` those ContainerStatus reports."""
        extra = {
            labelcodec.LABEL_KEYS: json.dumps(sorted(config.labels)),
            "image": config.image.image,
            "image-ref": image.id,
            "mounts": build.mounts_label(reported_mounts),
        }
        if sandbox_config.linux.cgroup_parent:
            extra["cgroup-parent"] = sandbox_config.linux.cgroup_parent
        edits = specedit.spec_labels(container_security(config.linux.security_context))
        extra.update(edits)
        engine_labels = labelcodec.split(
            encode_labels(
                CONTAINER_KIND,
                config.metadata,
                config.labels,
                config.annotations,
                sandbox_id=pod_id,
                log_path=container_log_path(sandbox_config.log_directory, config.log_path),
                extra=extra,
            )
        )
        args = build.container_args(
            config,
            sandbox_config,
            pod_id,
            name,
            engine_labels,
            image_name,
            ipc_join=self._nerdctl_version() >= 2,
            runtime=self._runc_wrapper() if edits else "",
        )
        container_id = run_or_clean(self.lookup, self.network, args, name)
        self.view.claim(container_id, name, image_name, engine_labels)
        return container_id

    def _runc_wrapper(self) -> str:
        """The runc wrapper of specedit.py, written once per shim."""
        if self._wrapper is None:
            self._wrapper = specedit.install_wrapper(self.options.state_dir)
        return self._wrapper

    def _nerdctl_version(self) -> int:
        """nerdctl's major version (a property of the binary, so asked once)."""
        if self._nerdctl_major is None:
            out = self.runner.run(["--version"]).stdout  # "nerdctl version 1.7.7"
            version = out.split()[-1].lstrip("v") if out.split() else "0"
            self._nerdctl_major = int(version.split(".")[0] or 0)
        return self._nerdctl_major

    # -- lifecycle ------------------------------------------------------------------

    def start(self, container_id: str) -> None:
        with self.view.expecting(container_id):
            try:
                self.runner.run(["start", container_id])
            except CRIError:
                self.view.invalidate()  # nerdctl's error label came in an update: read it
                raise
            self.view.await_state(container_id, started)
        if self.staging.staged():
            # runc has made the container's own copy of staged mounts: the host's can go
            self.staging.release_quietly(self._name_of(container_id))
        # the log path is in the labels: read them off the RPC's path
        threading.Thread(
            target=self._attach_logs_by_id,
            args=(container_id,),
            name=f"pycri-nerdctl-attach-{container_id[:12]}",
            daemon=True,
        ).start()

    def stop(self, container_id: str, timeout: int) -> None:
        with self.view.expecting(container_id):
            self.runner.run(
                ["stop", "-t", str(timeout), container_id], timeout=self.options.timeout + timeout
            )
            self.view.await_state(container_id, not_running)

    def remove(self, container_id: str) -> None:
        # staged mounts of a container never started: its name is needed to find them
        name = self._name_of(container_id) if self.staging.staged() else ""
        with self.view.expecting(container_id):
            self.runner.run(["rm", container_id])
            self.view.await_state(container_id, gone)
        if name:
            self.staging.release_quietly(name)
        self.volumes.prune(self.lookup.names)
        with self._lock:
            self._spec_users.pop(container_id, None)
        self.logs.forget(container_id)

    def update_resources(
        self, container_id: str, linux: cri.LinuxContainerResources | None
    ) -> None:
        """``nerdctl update``: the running cgroup and the stored spec both change."""
        self.lookup.inspect(container_id, CONTAINER_KIND)
        flags = build.update_args(linux) if linux is not None else []
        if flags:
            self.view.touched(container_id)
            self.runner.run(["update", *flags, container_id])
            self.view.touched(container_id)

    def _name_of(self, container_id: str) -> str:
        entry = self.lookup.viewed(container_id, CONTAINER_KIND)
        if entry is not None and entry.name:
            return entry.name
        return str(self.lookup.inspect(container_id, CONTAINER_KIND)["Name"])

    # -- reading --------------------------------------------------------------------

    def list(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        containers = self.view.converted(CONTAINER_KIND, convert.container_from_row)
        if containers is not None:
            return containers
        filters: list[str] = []
        if hint is not None:
            filters = build.ps_filters(hint.id, hint.label_selector)
            # the CRI filters on an id prefix, a label filter matches whole values
            if len(hint.pod_sandbox_id) == 64:
                filters += build.ps_filters("", {SANDBOX_ID_LABEL: hint.pod_sandbox_id})
        return [convert.container_from_row(row) for row in self.lookup.ps(CONTAINER_KIND, filters)]

    def state(self, container_id: str) -> cri.ContainerState | None:
        """Core's lookup of a container's state from the view; None when it is not fresh."""
        entry = self.lookup.viewed(container_id, CONTAINER_KIND)
        return None if entry is None else convert.container_from_row(entry.row()).state

    def status(
        self, container_id: str, verbose: bool
    ) -> tuple[cri.ContainerStatus, dict[str, str]]:
        data = self.lookup.inspect(container_id, CONTAINER_KIND)
        full_id = data["Id"]
        runc = self.lookup.runc(full_id)
        state = data.get("State") or {}
        exited = state.get("Status") in ("exited", "dead", "stopped")
        oom = exited and int(state.get("ExitCode") or 0) != 0 and self._oom_killed(data)
        if exited:
            finished = to_ns(state.get("FinishedAt") or "")
            self.logs.complete(full_id, labelcodec.join(convert.raw_labels(data)), finished)
        status = convert.container_status(data, runc.started_ns if runc else 0, oom)
        user = self._user(full_id, runc)
        if user is not None:
            status.user.linux.CopyFrom(user)
        info: dict[str, str] = {}
        if verbose:
            info["info"] = json.dumps(
                {
                    "pid": state.get("Pid", 0),
                    "sandboxID": convert.decoded(data).sandbox_id,
                    "nerdctl": data,
                }
            )
        return status, info

    def _user(self, container_id: str, runc: RuncState | None) -> cri.LinuxContainerUser | None:
        """The init's identity while it runs; otherwise the stored spec's, as containerd's CRI."""
        if runc is not None and runc.alive():
            running = process_user(runc.init_pid)
            if running is not None:
                return running
        with self._lock:
            if container_id in self._spec_users:
                return self._spec_users[container_id]
        found = self.runner.json(["container", "inspect", "--mode", "native", container_id])
        user = convert.spec_user(found[0]) if found else None
        with self._lock:
            self._spec_users[container_id] = user
        return user

    def _oom_killed(self, data: dict[str, Any]) -> bool:
        parent = convert.decoded(data).extra.get("cgroup-parent", "")
        return self.cgroups.oom_killed(data["Id"], parent)

    # -- logs -----------------------------------------------------------------------

    def _attach_logs_by_id(self, container_id: str) -> None:
        try:
            # nerdctl's start has updated the labels (with its state-dir): the view has them
            entry = self.lookup.viewed(container_id, CONTAINER_KIND)
            if entry is not None and entry.labels and "nerdctl/state-dir" in entry.labels:
                labels = entry.labels
            else:
                labels = convert.raw_labels(self.lookup.inspect(container_id, CONTAINER_KIND))
        except CRIError as err:
            log.warning("cannot follow the log of %s: %s", container_id[:13], err.message)
            return
        self.logs.attach(container_id, labelcodec.join(labels))

    def reopen_log(self, container_id: str) -> None:
        if self.logs.reopen(container_id):
            return
        # no live copier (it ended, or the server restarted): start one on a new file
        data = self.lookup.inspect(container_id, CONTAINER_KIND)
        labels = convert.raw_labels(data)
        cri_path = convert.decoded(data).log_path
        if cri_path:
            Path(cri_path).parent.mkdir(parents=True, exist_ok=True)
            Path(cri_path).touch()
        self.logs.attach(container_id, labelcodec.join(labels))

    def recover(self) -> None:
        """At start-up: resume copying the log of every container that has one, release
        the staged mounts no created container owns (a killed server's) and the network
        state of pods removed before (cni.py's sweep)."""
        try:
            rows = self.lookup.ps(None)
        except CRIError as err:
            log.warning("cannot resume container logs nor sweep CNI state: %s", err.message)
            return
        try:
            self.staging.sweep(lambda: self.lookup.names(only_created=True))
        except (CRIError, OSError) as err:
            log.warning("cannot release orphaned recursive read-only mounts: %s", err)
        for row in rows:
            labels = labelcodec.join(row.get("Labels") or {})
            if labels.get(KIND_LABEL) != CONTAINER_KIND:
                continue
            if convert.container_from_row(row).state != cri.CONTAINER_CREATED:
                self.logs.attach(row["ID"], labels)
        self.network.sweep({row["ID"] for row in rows})
