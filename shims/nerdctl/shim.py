"""NerdctlShim: the CRI on containerd, one nerdctl process per engine call.

nerdctl processes per RPC, core's own lookups included (measured; the
counts are logged at debug and reported in ``Status`` verbose info):

=========================================  =====================================
ListPodSandbox, ListContainers             0 while the container view is fresh
                                           (view.py); else 1 ``ps -a`` + filters
PodSandboxStatus, ContainerStatus          0 while the view is fresh and has kept the
                                           id's ``container inspect`` (memo.py: any
                                           event of the id drops it); else 1
                                           (+ runc state, cgroup files: start time,
                                           OOM kill; ContainerStatus's user from
                                           /proc while it runs, else + 1 ``inspect
                                           --mode native`` once per container, kept)
RunPodSandbox                              1 ``run -d`` (core's name check: the
                                           view); pause image missing: + ``pull``,
                                           ``run`` again (one pull for all calls)
CreateContainer                            1 ``create`` (core's pod lookups: the
                                           view); + 1 ``image inspect`` per image
                                           until an image event or a rebuild
StartContainer                             1, + 1 ``inspect`` off the RPC's path
                                           when the view lacks the labels
StopContainer, RemoveContainer             1 ``stop``/``rm`` (core's state: the view);
                                           + 1 ``ps`` while image volumes exist
StopPodSandbox, RemovePodSandbox           1 ``stop``/``rm`` (+ 1 ``inspect`` until the
                                           view has nerdctl's labels), + 1 per
                                           container to stop/remove; + CNI cleanup
                                           (cni.py): 1 plugin DEL, 1 ``iptables
                                           -S`` (+ 1 restore if a rule is left)
ExecSync                                   1 ``exec`` (+ core's ContainerStatus)
Exec, Attach (streaming, interactive.py)   1 ``exec -i -t`` for the session; attach:
                                           the kept ``inspect`` (as ContainerStatus),
                                           output from the json log
ContainerStats / ListContainerStats        the kept ``inspect`` (as ContainerStatus)
                                           / 0 (the view); numbers from cgroup
                                           files (see stats.py)
ListPodSandboxMetrics                      0 (the view); runc state, cgroup and
                                           /proc files (see metrics.py)
ListImages, ImageStatus                    0 while the view is fresh and no image
                                           event came since the last (memo.py); else 1
ImageFsInfo                                1; PullImage, RemoveImage: 2 (+ 1 ``ctr
                                           images rm`` when a running container uses it)
container logs                             0: nerdctl's json log file is read
=========================================  =====================================

While the view is not fresh (its event stream down, being rebuilt) each "0"
and "the view" above is 1 ``ps``/``inspect``. Nothing is kept only in memory:
the view is rebuilt from ``ps`` at start, log copiers from containers' labels.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, ClassVar, Self

from pycri.api import api_pb2 as cri
from pycri.core import metrics as core_metrics
from pycri.core.engine import (
    CONTAINER_KIND,
    KIND_LABEL,
    SANDBOX_ID_LABEL,
    SANDBOX_KIND,
    container_log_path,
    encode_labels,
)
from pycri.core.engine_names import CONTAINERD_NAMES, container_name, sandbox_name
from pycri.core.identity import process_user
from pycri.core.image_volumes import find_image_mounts
from pycri.core.images import is_image_id
from pycri.core.rro_staging import RROStaging, with_mounts
from pycri.core.sandbox_resources import SandboxResources
from pycri.core.security import container_security
from pycri.errors import (
    CRIError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    UnimplementedError,
)
from pycri.shim import PullProgress, Shim
from pycri.streaming.netns import forward_into_pid_netns
from pycri.streaming.streams import PortConnection, StreamIO

from . import args as build
from . import convert, interactive, metrics, specedit, stats
from . import labels as labelcodec
from .cni import NETWORKS_LABEL, PodNetwork, network_problem, networks_of
from .host import Cgroups, RuncState, exec_processes, kill_pids
from .image_volumes import ImageVolumes, with_image_refs
from .images import ImageStore
from .logfollow import LogFollowers
from .memo import ImageMemo
from .options import NerdctlOptions
from .runner import NerdctlRunner, error_for
from .timestamps import to_ns
from .view import ContainerView, EngineEvent, Entry, gone, not_running, started

__all__ = ["NerdctlShim"]

log = logging.getLogger(__name__)

#: nerdctl's answer to ``run --pull never`` without the image
_IMAGE_MISSING = "image not available"
#: seconds the pause container gets to exit on SIGTERM
SANDBOX_STOP_TIMEOUT = 10
_EXEC_EXIT = re.compile(rb'time="[^"]*" level=fatal msg="exec failed with exit code (\d+)"\n?\Z')


class NerdctlShim(Shim):
    """The containerd shim (see the module docstring for what each RPC costs)."""

    name = "nerdctl"
    #: the view hands out one list entry per container state (ContainerView.converted,
    #: dropped on every change); the subprocess fallback builds new ones each call
    stable_list_entries: ClassVar[bool] = True

    def __init__(
        self,
        options: NerdctlOptions | None = None,
        *,
        recover_logs: bool = True,
        watch_events: bool = True,
    ) -> None:
        super().__init__()
        self.options = options or NerdctlOptions()
        self.runner = NerdctlRunner(
            self.options.nerdctl, self.options.global_args(), self.options.timeout
        )
        self.images = ImageStore(self.runner, self.options)
        self.volumes = ImageVolumes(self.images.ctr, self.options.state_dir)
        self.cgroups = Cgroups(self.options.cgroup_root, self.options.namespace)
        self.pod_network = PodNetwork(
            self.options.namespace, self.options.cni_path, self.options.cni_netconfpath
        )
        self.logs = LogFollowers(self.options, self.cgroups)
        self._lock = threading.Lock()
        self._nerdctl_major: int | None = None
        #: the stored spec's user of each container (never changes after create)
        self._spec_users: dict[str, cri.LinuxContainerUser | None] = {}
        self._wrapper: str | None = None
        self.staging = RROStaging(f"{self.options.state_dir}/rro/{self.options.namespace}")
        self.sandbox_resources = SandboxResources(
            f"{self.options.state_dir}/pod-resources/{self.options.namespace}"
        )
        #: lists and core's lookups without a process while it is fresh (view.py)
        self.view = ContainerView(
            self.runner, self.options.namespace, lambda: self._ps(None), self._spontaneous
        )
        #: ImageStatus (and CreateContainer's lookup), ListImages: none while warm (memo.py)
        self.image_memo: ImageMemo[cri.Image] = ImageMemo(self.view)
        self.image_list_memo: ImageMemo[list[cri.Image]] = ImageMemo(self.view)
        if watch_events:
            self.view.start()
        if recover_logs:
            threading.Thread(
                target=self._recover, name="pycri-nerdctl-recover", daemon=True
            ).start()

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Self:
        return cls(NerdctlOptions.parse(options))

    def close(self) -> None:
        self.logs.close()
        self.view.close()
        self.runner.counter.finish()

    def before_rpc(self, rpc: str) -> None:
        self.runner.counter.begin(rpc)

    def after_rpc(self, rpc: str) -> None:
        self.runner.counter.finish()

    # -- helpers ---------------------------------------------------------------

    def _inspect(self, object_id: str, kind: str) -> dict[str, Any]:
        """``container inspect`` of a pycri pod or container (NotFoundError otherwise);
        none while the view is fresh and has kept it since the id's last event (memo.py)."""
        data = self.view.inspect(object_id, self._inspect_any)
        if convert.kind_of(data) != kind:
            what = "pod sandbox" if kind == SANDBOX_KIND else "container"
            raise NotFoundError(f"{what} {object_id[:13]} not found")
        return data

    def _inspect_any(self, object_id: str) -> dict[str, Any]:
        found = self.runner.json(["container", "inspect", object_id])
        if not found:
            raise NotFoundError(f"{object_id[:13]} not found")
        data: dict[str, Any] = found[0]
        return data

    def _viewed(self, object_id: str, kind: str) -> Entry | None:
        """The view's entry of a pycri pod or container (NotFoundError otherwise);
        None when the view is not fresh (ask nerdctl then)."""
        fresh, entry = self.view.entry(object_id)
        if not fresh:
            return None
        if entry is None or convert.kind_of(entry.row()) != kind:
            what = "pod sandbox" if kind == SANDBOX_KIND else "container"
            raise NotFoundError(f"{what} {object_id[:13]} not found")
        return entry

    def _names(self, only_created: bool = False) -> set[str]:
        """Names of all the namespace's containers (``Created`` ones alone), by ``ps``."""
        return {
            str(row.get("Names") or "")
            for row in self._ps(None)
            if not only_created or str(row.get("Status") or "").lower().startswith("created")
        }

    def _pycri_rows(self) -> list[dict[str, Any]]:
        """``ps`` rows of pycri's pods and containers: from the view while it is fresh."""
        rows = self.view.rows()
        if rows is None:
            return self._ps(None, [f"label={KIND_LABEL}"])
        return [row for row in rows if KIND_LABEL in row["Labels"]]

    def _ps(self, kind: str | None, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        args = ["ps", "-a", "--no-trunc", "--format", "json"]
        if kind:
            args += ["--filter", f"label={KIND_LABEL}={kind}"]
        for f in filters:
            args += ["--filter", f]
        rows: list[dict[str, Any]] = self.runner.run_despite_bystanders(args).json_lines()
        # a container removed while ps ran can come out as a row without an id (seen under
        # load: its stats call then ran `container inspect ""`)
        return [row for row in rows if row.get("ID")]

    def _run_or_clean(self, args: list[str], name: str) -> str:
        """Run a ``run``/``create``; remove what a failure left behind under ``name``."""

        def clean() -> None:
            self._release_network_of(name)
            self.runner.run(["rm", "-f", name], check=False)

        try:
            out = self.runner.run_despite_bystanders(args, before_retry=clean).stdout.strip()
        except CRIError as err:
            # a name taken by another container is not ours to remove; a missing
            # image stops nerdctl before it creates anything
            if "is already used by" not in err.message and _IMAGE_MISSING not in err.message:
                clean()
            raise
        return out.splitlines()[-1]

    def _release_network_of(self, name: str) -> None:
        """The CNI state of a sandbox whose ``run`` failed after nerdctl set up its network.

        nerdctl's postStop hook frees the address then, but not the masquerade
        rule (cni.py); containers of a pod join its netns and hold none.
        """
        result = self.runner.run(["container", "inspect", name], check=False)
        try:
            found = result.json() if result.returncode == 0 else []
        except ValueError:
            found = []
        for data in found if isinstance(found, list) else []:
            networks = networks_of(convert.raw_labels(data))
            if not networks:
                continue
            try:
                self.pod_network.release(data["Id"], networks)
            except CRIError as err:  # the run's own error is the one to report
                log.warning("cannot release the network of %s: %s", name, err.message)

    @staticmethod
    def _check_label_keys(*maps: Mapping[str, str]) -> None:
        for mapping in maps:
            for key in mapping:
                if "=" in key:
                    raise InvalidArgumentError(f"label/annotation key {key!r} contains '='")

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

    # -- identity and health ---------------------------------------------------

    def _version_info(self) -> dict[str, Any]:
        data: dict[str, Any] = self.runner.json(["version", "--format", "json"])
        return data

    def runtime_version(self) -> str:
        data = self._version_info()
        client = (data.get("Client") or {}).get("Version", "?")
        components = (data.get("Server") or {}).get("Components") or []
        engine = {c.get("Name"): c.get("Version") for c in components}
        if "containerd" not in engine:
            raise UnavailableError(
                f"nerdctl {client} got no answer from containerd at {self.options.address}; "
                "start containerd"
            )
        return f"nerdctl {client.lstrip('v')}, containerd {engine['containerd']}"

    def conditions(self) -> list[cri.RuntimeCondition]:
        try:
            self.runtime_version()
            runtime = cri.RuntimeCondition(type="RuntimeReady", status=True)
        except CRIError as err:
            runtime = cri.RuntimeCondition(
                type="RuntimeReady",
                status=False,
                reason="ContainerdUnreachable",
                message=err.message,
            )
        problem = network_problem(
            self.options.cni_path, self.options.cni_netconfpath, self.options.network
        )
        network = cri.RuntimeCondition(
            type="NetworkReady",
            status=problem is None,
            reason="NetworkPluginNotReady" if problem else "",
            message=problem or "",
        )
        return [runtime, network]

    def supplemental_groups_policy(self, runtime_handler: str | None = None) -> bool:
        return True  # Strict: the runc wrapper (specedit.py), for the init and every exec

    def info(self) -> dict[str, str]:
        return {
            "config": json.dumps(
                {
                    "namespace": self.options.namespace,
                    "address": self.options.address,
                    "network": self.options.network,
                    "pause_image": self.options.pause_image,
                    "cni_path": self.options.cni_path,
                    "timeout": self.options.timeout,
                }
            ),
            # nerdctl processes per CRI RPC since start-up
            "nerdctlProcesses": json.dumps(self.runner.counter.snapshot()),
            "containerView": json.dumps(self.view.info()),
        }

    def runtime_handler_features(self, handler: str) -> cri.RuntimeHandlerFeatures:
        # runc 1.1 has no "rro" mount option: pycri stages the mount (core/rro_staging.py)
        return cri.RuntimeHandlerFeatures(recursive_read_only_mounts=self.staging.supported())

    # -- pod sandboxes ---------------------------------------------------------

    def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        self._check_label_keys(config.labels, config.annotations)
        extra = {
            labelcodec.LABEL_KEYS: json.dumps(sorted(config.labels)),
            "namespaces": build.namespace_label(config),
        }
        if runtime_handler:
            extra["runtime-handler"] = runtime_handler
        engine_labels = labelcodec.split(
            encode_labels(
                SANDBOX_KIND, config.metadata, config.labels, config.annotations, extra=extra
            )
        )
        name = sandbox_name(config.metadata, CONTAINERD_NAMES)
        args = build.sandbox_args(
            config, name, engine_labels, self.options.network, self.options.pause_image
        )
        # `run --pull never` keeps the usual path at one process; a missing pause
        # image (fresh node, `crictl rmi --prune`) is pulled, then run again
        seen = self.images.sandbox_pull.attempts
        try:
            pod_id = self._run_or_clean(args, name)
        except NotFoundError as err:
            if _IMAGE_MISSING not in err.message:
                raise
            self.images.sandbox_pull.pull(seen)
            pod_id = self._run_or_clean(args, name)
        self.view.claim(pod_id, name, self.options.pause_image, engine_labels)
        self.view.await_state(pod_id, started)
        return pod_id

    def _pod(self, pod_id: str) -> tuple[str, bool, dict[str, str]]:
        """(id, running, engine labels): from the view once it has nerdctl's labels."""
        entry = self._viewed(pod_id, SANDBOX_KIND)
        if entry is not None and NETWORKS_LABEL in (entry.labels or {}):
            return entry.id, not not_running(entry), dict(entry.labels or {})
        data = self._inspect(pod_id, SANDBOX_KIND)
        return data["Id"], bool((data.get("State") or {}).get("Running")), convert.raw_labels(data)

    def stop_pod_sandbox(self, pod_id: str) -> None:
        full_id, running, labels = self._pod(pod_id)
        self.view.touched(full_id)
        if running:
            self.runner.run(
                ["stop", "-t", str(SANDBOX_STOP_TIMEOUT), pod_id],
                timeout=self.options.timeout + SANDBOX_STOP_TIMEOUT,
            )
            self.view.await_state(full_id, not_running)
        # nerdctl releases the address only on rm and never the masquerade rule (cni.py);
        # also when the pause died first, and on every repeated stop (after a kill -9)
        self.pod_network.release(full_id, networks_of(labels))

    def remove_pod_sandbox(self, pod_id: str) -> None:
        full_id, running, labels = self._pod(pod_id)
        if running:
            self.stop_pod_sandbox(pod_id)  # core stops a ready pod first; this is the race
        else:
            # before rm: once the container is gone nothing names the pod's rules any more
            self.pod_network.release(full_id, networks_of(labels))
        self.view.touched(full_id)
        self.runner.run(["rm", pod_id])
        self.view.await_state(full_id, gone)

    def pod_sandbox_status(
        self, pod_id: str, verbose: bool
    ) -> tuple[cri.PodSandboxStatus, dict[str, str]]:
        data = self._inspect(pod_id, SANDBOX_KIND)
        status = convert.sandbox_status(data)
        info: dict[str, str] = {}
        if verbose:
            state = data.get("State") or {}
            info["info"] = json.dumps({"pid": state.get("Pid", 0), "nerdctl": data})
        return status, info

    def port_forward(self, pod_id: str, port: int, connection: PortConnection) -> None:
        state = self._inspect(pod_id, SANDBOX_KIND).get("State") or {}
        forward_into_pid_netns(int(state.get("Pid") or 0), port, connection)

    def list_pod_sandboxes(self, hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        pods = self.view.converted(SANDBOX_KIND, convert.pod_from_row)
        if pods is not None:
            return pods
        filters = build.ps_filters(hint.id, hint.label_selector) if hint else []
        return [convert.pod_from_row(row) for row in self._ps(SANDBOX_KIND, filters)]

    def pod_sandbox(self, pod_id: str) -> cri.PodSandbox:
        entry = self._viewed(pod_id, SANDBOX_KIND)
        return super().pod_sandbox(pod_id) if entry is None else convert.pod_from_row(entry.row())

    # -- containers ------------------------------------------------------------

    def create_container(
        self,
        pod_id: str,
        config: cri.ContainerConfig,
        sandbox_config: cri.PodSandboxConfig,
    ) -> str:
        self._check_label_keys(config.labels, config.annotations)
        image_mounts = find_image_mounts(self, config)
        if not image_mounts:
            return self._create_container(pod_id, config, sandbox_config)
        name = container_name(config.metadata, sandbox_config.metadata, CONTAINERD_NAMES)
        with self.volumes.locked():  # no prune between the mounts and the container
            engine_config = self.volumes.mount(name, config, image_mounts)
            try:
                reported = with_image_refs(config, image_mounts).mounts
                return self._create_container(pod_id, engine_config, sandbox_config, reported)
            except BaseException:
                self.volumes.release(name)
                raise

    def _create_container(
        self,
        pod_id: str,
        config: cri.ContainerConfig,
        sandbox_config: cri.PodSandboxConfig,
        reported_mounts: Sequence[cri.Mount] = (),
    ) -> str:
        """CreateContainer once image mounts are binds; ``reported_mounts`` as requested."""
        requested = config.image.image
        image = self.image_memo.get(requested, self.images.status)
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
        container_id = self._run_or_clean(args, name)
        self.view.claim(container_id, name, image_name, engine_labels)
        return container_id

    def start_container(self, container_id: str) -> None:
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

    def stop_container(self, container_id: str, timeout: int) -> None:
        with self.view.expecting(container_id):
            self.runner.run(
                ["stop", "-t", str(timeout), container_id], timeout=self.options.timeout + timeout
            )
            self.view.await_state(container_id, not_running)

    def remove_container(self, container_id: str) -> None:
        # staged mounts of a container never started: its name is needed to find them
        name = self._name_of(container_id) if self.staging.staged() else ""
        with self.view.expecting(container_id):
            self.runner.run(["rm", container_id])
            self.view.await_state(container_id, gone)
        if name:
            self.staging.release_quietly(name)
        self.volumes.prune(self._names)
        with self._lock:
            self._spec_users.pop(container_id, None)
        self.logs.forget(container_id)

    def _spontaneous(self, event: EngineEvent) -> None:
        """What nobody asked pycri for (an exit, a change behind its back): its CRI event."""
        if (message := convert.container_event(event)) is not None:
            self.emit_event(message)

    def _name_of(self, container_id: str) -> str:
        entry = self._viewed(container_id, CONTAINER_KIND)
        if entry is not None and entry.name:
            return entry.name
        return str(self._inspect(container_id, CONTAINER_KIND)["Name"])

    def list_containers(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        containers = self.view.converted(CONTAINER_KIND, convert.container_from_row)
        if containers is not None:
            return containers
        filters: list[str] = []
        if hint is not None:
            filters = build.ps_filters(hint.id, hint.label_selector)
            # the CRI filters on an id prefix, a label filter matches whole values
            if len(hint.pod_sandbox_id) == 64:
                filters += build.ps_filters("", {SANDBOX_ID_LABEL: hint.pod_sandbox_id})
        return [convert.container_from_row(row) for row in self._ps(CONTAINER_KIND, filters)]

    def container_state(self, container_id: str) -> cri.ContainerState:
        entry = self._viewed(container_id, CONTAINER_KIND)
        if entry is None:
            return super().container_state(container_id)
        return convert.container_from_row(entry.row()).state

    def container_status(
        self, container_id: str, verbose: bool
    ) -> tuple[cri.ContainerStatus, dict[str, str]]:
        data = self._inspect(container_id, CONTAINER_KIND)
        full_id = data["Id"]
        runc = self._runc(full_id)
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

    def update_container_resources(
        self,
        container_id: str,
        linux: cri.LinuxContainerResources | None,
        annotations: Mapping[str, str],
    ) -> None:
        """``nerdctl update``: the running cgroup and the stored spec both change."""
        self._inspect(container_id, CONTAINER_KIND)
        flags = build.update_args(linux) if linux is not None else []
        if flags:
            self.view.touched(container_id)
            self.runner.run(["update", *flags, container_id])
            self.view.touched(container_id)

    # -- exec ------------------------------------------------------------------

    def exec_sync(
        self, container_id: str, cmd: Sequence[str], timeout: int
    ) -> cri.ExecSyncResponse:
        # CRI's 0 means "no timeout"; every call is bounded, so 0 gets the call timeout
        limit = float(timeout) if timeout > 0 else self.options.timeout
        runc = self._runc(container_id)
        before = self._exec_pids(container_id, runc)

        def kill_ours() -> None:
            # nerdctl exec dying does not stop the process it started: kill that first
            if runc is not None:
                kill_pids(self._exec_pids(container_id, runc, exclude=before))

        result = self.runner.run(
            ["exec", container_id, *cmd], timeout=limit, check=False, on_timeout=kill_ours
        )
        stderr = result.err
        exit_code = 0
        if result.returncode != 0:
            # nerdctl 1.x exits 1 whatever the command's code, and logs the real
            # code as its last stderr line; any other failure is nerdctl's own
            found = _EXEC_EXIT.search(stderr)
            if found is None:
                raise error_for(["exec", container_id, *cmd], result.returncode, result.stderr)
            exit_code = int(found[1])
            stderr = stderr[: found.start()]
        return cri.ExecSyncResponse(stdout=result.out, stderr=stderr, exit_code=exit_code)

    def _exec_pids(
        self, container_id: str, runc: RuncState | None, exclude: AbstractSet[int] = frozenset()
    ) -> set[int]:
        """Processes exec'd into the container (see host.exec_processes)."""
        if runc is None:
            return set()
        parent = _cgroup_parent(runc, "" if self.cgroups.v2 else "pids")
        return exec_processes(self.cgroups, container_id, runc.init_pid, parent, exclude)

    def _container_pids(self, container_id: str, runc: RuncState) -> list[int]:
        """Every process in the container's cgroup."""
        return self.cgroups.procs(
            container_id, _cgroup_parent(runc, "" if self.cgroups.v2 else "pids")
        )

    # -- streaming exec and attach (see interactive.py) -------------------------

    def exec_stream(self, container_id: str, cmd: Sequence[str], io: StreamIO) -> int:
        """``nerdctl exec [-i] [-t]`` wired to ``io`` (see interactive.py for its quirks)."""

        def stop(client_pid: int) -> None:
            # nerdctl dying does not stop the process it started: kill that first
            runc = self._runc(container_id)
            interactive.stop_exec(
                client_pid,
                runc.init_pid if runc is not None and runc.alive() else None,
                container_id,
                lambda: self._container_pids(container_id, runc) if runc is not None else [],
            )

        return interactive.exec_stream(self.runner, container_id, cmd, io, on_cancel=stop)

    def attach(self, container_id: str, io: StreamIO) -> None:
        """The container's output from its json log, from now on; stdin is refused (NO_STDIN)."""
        data = self._inspect(container_id, CONTAINER_KIND)
        if not (data.get("State") or {}).get("Running"):
            raise FailedPreconditionError(
                f"container {container_id[:13]} is not running: cannot attach to it"
            )
        if io.stdin is not None:
            raise UnimplementedError(interactive.NO_STDIN)
        full_id = data["Id"]
        labels = convert.raw_labels(data)
        path = interactive.json_log_path(labels.get("nerdctl/state-dir", ""), full_id)
        parent = convert.decoded(data).extra.get("cgroup-parent", "")
        interactive.attach_log(path, self.logs.alive_check(full_id, parent), io)

    # -- logs ------------------------------------------------------------------

    def _attach_logs_by_id(self, container_id: str) -> None:
        try:
            # nerdctl's start has updated the labels (with its state-dir): the view has them
            entry = self._viewed(container_id, CONTAINER_KIND)
            if entry is not None and entry.labels and "nerdctl/state-dir" in entry.labels:
                labels = entry.labels
            else:
                labels = convert.raw_labels(self._inspect(container_id, CONTAINER_KIND))
        except CRIError as err:
            log.warning("cannot follow the log of %s: %s", container_id[:13], err.message)
            return
        self.logs.attach(container_id, labelcodec.join(labels))

    def _recover(self) -> None:
        """At start-up: resume copying the log of every container that has one, release
        the staged mounts no created container owns (a killed server's) and the network
        state of pods removed before (cni.py's sweep)."""
        try:
            rows = self._ps(None)
        except CRIError as err:
            log.warning("cannot resume container logs nor sweep CNI state: %s", err.message)
            return
        try:
            self.staging.sweep(lambda: self._names(only_created=True))
        except (CRIError, OSError) as err:
            log.warning("cannot release orphaned recursive read-only mounts: %s", err)
        for row in rows:
            labels = labelcodec.join(row.get("Labels") or {})
            if labels.get(KIND_LABEL) != CONTAINER_KIND:
                continue
            if convert.container_from_row(row).state != cri.CONTAINER_CREATED:
                self.logs.attach(row["ID"], labels)
        self.pod_network.sweep({row["ID"] for row in rows})

    def reopen_container_log(self, container_id: str) -> None:
        if self.logs.reopen(container_id):
            return
        # no live copier (it ended, or the server restarted): start one on a new file
        data = self._inspect(container_id, CONTAINER_KIND)
        labels = convert.raw_labels(data)
        cri_path = convert.decoded(data).log_path
        if cri_path:
            Path(cri_path).parent.mkdir(parents=True, exist_ok=True)
            Path(cri_path).touch()
        self.logs.attach(container_id, labelcodec.join(labels))

    # -- stats (see stats.py) ---------------------------------------------------

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        """CPU and memory from the containers' cgroups; one nerdctl call for the labels."""
        if len(container_ids) == 1:
            try:
                data = self._inspect(container_ids[0], CONTAINER_KIND)
            except NotFoundError:
                return []  # removed since it was listed: left out, as a ps would leave it
            return [stats.container_stats(self.cgroups, data)]
        wanted = set(container_ids)
        rows = self._pycri_rows()
        return [stats.container_stats(self.cgroups, row) for row in rows if row["ID"] in wanted]

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        """Sums over each pod's containers; network from the pause's netns. One ``ps``."""
        wanted = set(pod_ids)
        pods: dict[str, dict[str, Any]] = {}
        members: dict[str, list[dict[str, Any]]] = {pod_id: [] for pod_id in wanted}
        for row in self._pycri_rows():
            labels = row.get("Labels") or {}
            if labels.get(KIND_LABEL) == SANDBOX_KIND and row["ID"] in wanted:
                pods[row["ID"]] = row
            elif labels.get(SANDBOX_ID_LABEL) in wanted:
                members[labels[SANDBOX_ID_LABEL]].append(row)
        return [
            stats.pod_stats(self.cgroups, self._runc(p), pods[p], members[p])
            for p in pod_ids
            if p in pods
        ]

    def metric_descriptors(self) -> list[cri.MetricDescriptor]:
        return core_metrics.descriptors()

    def pod_sandbox_metrics(self) -> list[cri.PodSandboxMetrics]:
        """One ``ps``; the rest from runc's state and the kernel (see metrics.py)."""
        return metrics.pod_sandbox_metrics(
            self._pycri_rows(),
            self._runc,
            self.options.cgroup_root,
            self.options.containerd_root,
        )

    def _runc(self, object_id: str) -> RuncState | None:
        return RuncState.load(self.options.runc_root, self.options.namespace, object_id)

    # -- images ----------------------------------------------------------------

    def list_images(self) -> list[cri.Image]:
        # copies: the kept messages are never handed out (a router merges into them)
        kept = self.image_list_memo.get("", lambda _: self.images.list())
        return [_copy(image) for image in kept or []]

    def image_status(self, image: str) -> cri.Image | None:
        found = self.image_memo.get(image, self.images.status)
        return None if found is None else _copy(found)

    def pull_image(
        self,
        image: str,
        auth: cri.AuthConfig | None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> str:
        try:
            return self.images.pull(image, auth)
        finally:
            self._images_changed()

    def remove_image(self, image: str) -> None:
        try:
            self.images.remove(image)
        finally:
            self._images_changed()

    def _images_changed(self) -> None:
        """The shim pulled or removed an image: its event may still be on its way."""
        self.image_memo.clear()
        self.image_list_memo.clear()

    def image_fs_info(self) -> cri.ImageFsInfoResponse:
        return self.images.fs_info()

    def describe(self) -> dict[str, Any]:
        return {
            "shim": self.name,
            "engine": self.runtime_version(),
            "namespace": self.options.namespace,
        }


def _copy(image: cri.Image) -> cri.Image:
    copied = cri.Image()
    copied.CopyFrom(image)
    return copied


def _cgroup_parent(runc: RuncState, controller: str) -> str:
    """The init's cgroup in ``controller`` ("" on v2), minus the container's own directory."""
    try:
        text = Path(f"/proc/{runc.init_pid}/cgroup").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or controllers == controller:
            return path.rsplit("/", 1)[0]
    return ""
