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

Where each call's code is: sandboxes.py (PodSandbox RPCs, PortForward),
containers.py (Container RPCs, ReopenContainerLog, start-up recovery),
images.py, stats.py, metrics.py, logs.py (the CRI log copiers),
execsync.py, interactive.py (Exec, Attach); lookup.py finds pods and
containers through the view (view.py, events.py) or nerdctl (runner.py),
memo.py keeps what it learnt while the view vouches for it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self

from pycri.api import api_pb2 as cri
from pycri.core import metrics as core_metrics
from pycri.core.rro_staging import RROStaging
from pycri.core.sandbox_resources import SandboxResources
from pycri.errors import CRIError, UnavailableError
from pycri.shim import PullProgress, Shim
from pycri.streaming.streams import PortConnection, StreamIO
from pycri_shims.nerdctl import convert, interactive, metrics
from pycri_shims.nerdctl.cni import PodNetwork, network_problem
from pycri_shims.nerdctl.containers import Containers
from pycri_shims.nerdctl.events import EngineEvent
from pycri_shims.nerdctl.execsync import exec_sync
from pycri_shims.nerdctl.host import Cgroups
from pycri_shims.nerdctl.image_volumes import ImageVolumes
from pycri_shims.nerdctl.images import ImageStore
from pycri_shims.nerdctl.logs import LogFollowers
from pycri_shims.nerdctl.lookup import Lookup
from pycri_shims.nerdctl.options import NerdctlOptions
from pycri_shims.nerdctl.runner import NerdctlRunner
from pycri_shims.nerdctl.sandboxes import Sandboxes
from pycri_shims.nerdctl.stats import NerdctlStats

__all__ = ["NerdctlShim"]


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
        runner: NerdctlRunner | None = None,
    ) -> None:
        super().__init__()
        self.options = options = options or NerdctlOptions()
        self.runner = runner or NerdctlRunner(
            options.nerdctl, options.global_args(), options.timeout
        )
        self.lookup = Lookup(self.runner, options, self._spontaneous)
        self.view = self.lookup.view
        self.images = ImageStore(self.runner, options, self.view)
        self.volumes = ImageVolumes(self.images.ctr, options.state_dir)
        self.cgroups = Cgroups(options.cgroup_root, options.namespace)
        self.pod_network = PodNetwork(options.namespace, options.cni_path, options.cni_netconfpath)
        self.logs = LogFollowers(options, self.cgroups)
        self.staging = RROStaging(f"{options.state_dir}/rro/{options.namespace}")
        self.sandbox_resources = SandboxResources(
            f"{options.state_dir}/pod-resources/{options.namespace}"
        )
        self.sandboxes = Sandboxes(self.lookup, options, self.images, self.pod_network)
        self.containers = Containers(
            self.lookup,
            options,
            self.images,
            self.volumes,
            self.staging,
            self.logs,
            self.pod_network,
            self.cgroups,
        )
        self.stats = NerdctlStats(self.lookup, self.cgroups)
        if watch_events:
            self.view.start()
        if recover_logs:
            threading.Thread(
                target=self.containers.recover, name="pycri-nerdctl-recover", daemon=True
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

    def _spontaneous(self, event: EngineEvent) -> None:
        """What nobody asked pycri for (an exit, a change behind its back): its CRI event."""
        if (message := convert.container_event(event)) is not None:
            self.emit_event(message)

    # -- identity and health ---------------------------------------------------

    def runtime_version(self) -> str:
        data: dict[str, Any] = self.runner.json(["version", "--format", "json"])
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

    def describe(self) -> dict[str, Any]:
        return {
            "shim": self.name,
            "engine": self.runtime_version(),
            "namespace": self.options.namespace,
        }

    # -- pod sandboxes (sandboxes.py) ------------------------------------------

    def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        return self.sandboxes.run(config, runtime_handler)

    def stop_pod_sandbox(self, pod_id: str) -> None:
        self.sandboxes.stop(pod_id)

    def remove_pod_sandbox(self, pod_id: str) -> None:
        self.sandboxes.remove(pod_id)

    def pod_sandbox_status(
        self, pod_id: str, verbose: bool
    ) -> tuple[cri.PodSandboxStatus, dict[str, str]]:
        return self.sandboxes.status(pod_id, verbose)

    def list_pod_sandboxes(self, hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        return self.sandboxes.list(hint)

    def pod_sandbox(self, pod_id: str) -> cri.PodSandbox:
        pod = self.sandboxes.get(pod_id)
        return super().pod_sandbox(pod_id) if pod is None else pod

    def port_forward(self, pod_id: str, port: int, connection: PortConnection) -> None:
        self.sandboxes.port_forward(pod_id, port, connection)

    # -- containers (containers.py) ----------------------------------------------

    def create_container(
        self, pod_id: str, config: cri.ContainerConfig, sandbox_config: cri.PodSandboxConfig
    ) -> str:
        return self.containers.create(pod_id, config, sandbox_config)

    def start_container(self, container_id: str) -> None:
        self.containers.start(container_id)

    def stop_container(self, container_id: str, timeout: int) -> None:
        self.containers.stop(container_id, timeout)

    def remove_container(self, container_id: str) -> None:
        self.containers.remove(container_id)

    def list_containers(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        return self.containers.list(hint)

    def container_state(self, container_id: str) -> cri.ContainerState:
        state = self.containers.state(container_id)
        return super().container_state(container_id) if state is None else state

    def container_status(
        self, container_id: str, verbose: bool
    ) -> tuple[cri.ContainerStatus, dict[str, str]]:
        return self.containers.status(container_id, verbose)

    def update_container_resources(
        self,
        container_id: str,
        linux: cri.LinuxContainerResources | None,
        annotations: Mapping[str, str],
    ) -> None:
        self.containers.update_resources(container_id, linux)

    def reopen_container_log(self, container_id: str) -> None:
        self.containers.reopen_log(container_id)

    # -- exec, attach (execsync.py, interactive.py) --------------------------------

    def exec_sync(
        self, container_id: str, cmd: Sequence[str], timeout: int
    ) -> cri.ExecSyncResponse:
        return exec_sync(self.lookup, self.cgroups, container_id, cmd, timeout)

    def exec_stream(self, container_id: str, cmd: Sequence[str], io: StreamIO) -> int:
        return interactive.exec_stream(self.lookup, self.cgroups, container_id, cmd, io)

    def attach(self, container_id: str, io: StreamIO) -> None:
        interactive.attach(self.lookup, self.logs, container_id, io)

    # -- stats and metrics (stats.py, metrics.py) ------------------------------------

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        return self.stats.container_stats(container_ids)

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        return self.stats.pod_sandbox_stats(pod_ids)

    def metric_descriptors(self) -> list[cri.MetricDescriptor]:
        return core_metrics.descriptors()

    def pod_sandbox_metrics(self) -> list[cri.PodSandboxMetrics]:
        return metrics.pod_sandbox_metrics(
            self.lookup.pycri_rows(),
            self.lookup.runc,
            self.options.cgroup_root,
            self.options.containerd_root,
        )

    # -- images (images.py) ------------------------------------------------------------

    def list_images(self) -> list[cri.Image]:
        return self.images.list_images()

    def image_status(self, image: str) -> cri.Image | None:
        return self.images.image_status(image)

    def pull_image(
        self,
        image: str,
        auth: cri.AuthConfig | None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> str:
        return self.images.pull_image(image, auth)

    def remove_image(self, image: str) -> None:
        self.images.remove_image(image)

    def image_fs_info(self) -> cri.ImageFsInfoResponse:
        return self.images.fs_info()
