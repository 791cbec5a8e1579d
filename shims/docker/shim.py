"""DockerShim: the CRI on Docker, dockershim's mapping with pycri writing the logs.

Options (``--shim-option KEY=VALUE``):

* ``docker_host`` — the daemon (default ``$DOCKER_HOST`` or unix:///var/run/docker.sock);
* ``pause_image`` — the sandbox image (default registry.k8s.io/pause:3.9), pulled
  when missing with Docker's own credentials, reported pinned;
* ``timeout`` — seconds any one Docker call may take (default 30);
* ``stats_workers`` — stats calls in flight at once, for ListContainerStats (default 256;
  dockerd answers them all at its next once-a-second tick, see stats.py);
* ``pull_stall_timeout`` — seconds a pull may go without progress (default 60);
* ``list_window`` — seconds one Docker list may answer both halves of a relist
  (default 0: every list is its own Docker call; see lists.py).
* ``state_dir`` — pycri's files for this shim, root's alone (default
  /var/lib/pycri/docker, on disk: image trees can be large): the image trees
  that image volumes bind-mount (``image-volumes/``, see image_volumes.py),
  the staged recursive read-only mounts (``rro/``,
  pycri/core/rro_staging.py) and what UpdatePodSandboxResources reported
  for each pod (``pod-resources/``, pycri/core/sandbox_resources.py).

Nothing about pods or containers is kept in memory: every answer comes
from Docker (names and labels), so a restarted server sees everything;
the one figure Docker cannot hold (a pod's resources as the kubelet last
reported them) is a file of the state directory.
(The one exception, opt-in: a list snapshot reused for ``list_window``
seconds, dropped by every change made through the shim.)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.core import metrics as core_metrics
from pycri.core.images import normalize_reference
from pycri.core.rro_staging import RROStaging
from pycri.core.sandbox_resources import SandboxResources
from pycri.errors import CRIError
from pycri.shim import PullProgress, Shim
from pycri.streaming.netns import forward_into_pid_netns
from pycri.streaming.streams import PortConnection, StreamIO
from pycri_shims.docker.connection import DockerConnection
from pycri_shims.docker.containers import Containers
from pycri_shims.docker.execsync import exec_sync
from pycri_shims.docker.image_volumes import ImageVolumes
from pycri_shims.docker.images import DockerImages
from pycri_shims.docker.interactive import attach, exec_stream
from pycri_shims.docker.lists import ListSnapshot
from pycri_shims.docker.logs import DockerLogs
from pycri_shims.docker.metrics import DockerMetrics
from pycri_shims.docker.sandboxes import DEFAULT_PAUSE_IMAGE, Sandboxes
from pycri_shims.docker.stats import DockerStats

__all__ = ["DockerShim"]

log = logging.getLogger(__name__)


class DockerShim(Shim):
    """The ``docker`` shim (see the module docstring for its options)."""

    name = "docker"

    def __init__(
        self,
        docker_host: str | None = None,
        pause_image: str = DEFAULT_PAUSE_IMAGE,
        timeout: float | str = 30.0,
        stats_workers: int | str = 256,
        pull_stall_timeout: float | str = 60.0,
        list_window: float | str = 0.0,
        state_dir: str = "/var/lib/pycri/docker",
    ) -> None:
        super().__init__()
        self.connection = DockerConnection(docker_host, float(timeout))
        self.lists = ListSnapshot(self.connection, float(list_window))
        self.logs = DockerLogs(self.connection)
        self.images = DockerImages(self.connection, float(pull_stall_timeout), pause_image)
        self.sandboxes = Sandboxes(
            self.connection,
            self.lists,
            pause_image,
            pull=lambda ref: self.images.pull_image(normalize_reference(ref), None),
        )
        self.staging = RROStaging(f"{state_dir}/rro")
        self.sandbox_resources = SandboxResources(f"{state_dir}/pod-resources")
        self.containers = Containers(
            self.connection,
            self.lists,
            self.sandboxes,
            self.logs,
            self.images,
            ImageVolumes(self.connection, state_dir),
            self.staging,
        )
        self.stats = DockerStats(self.connection, self._root_dir, int(stats_workers))
        self.metrics = DockerMetrics(self.connection, self._root_dir)
        self._root: str | None = None
        self.connection.on_connect(self._resume_logs)
        # Connect in the background so that a restarted server resumes copying
        # logs at once, and starts (answering UNAVAILABLE) while dockerd is down.
        threading.Thread(
            target=self._connect_quietly, name="pycri-docker-connect", daemon=True
        ).start()

    def _connect_quietly(self) -> None:
        try:
            self.connection.api  # noqa: B018 - connecting runs the on_connect hooks
        except CRIError as err:
            log.warning("%s", err.message)

    def _resume_logs(self) -> None:
        try:
            self.containers.resume_logs()
        except CRIError as err:
            log.warning("cannot resume container logs: %s", err.message)
        try:
            self.containers.sweep_staging()
        except (CRIError, OSError) as err:
            log.warning("cannot release orphaned recursive read-only mounts: %s", err)

    def before_rpc(self, rpc: str) -> None:
        self.connection.counter.begin(rpc)

    def after_rpc(self, rpc: str) -> None:
        self.connection.counter.finish()

    def close(self) -> None:
        self.logs.stop_all()
        self.stats.close()
        self.metrics.close()
        self.connection.close()

    # -- identity and health -------------------------------------------------

    def _info(self) -> Mapping[str, Any]:
        with self.connection.errors("asking Docker for its info"):
            info: Mapping[str, Any] = self.connection.api.info()
        self._root = str(info.get("DockerRootDir") or "/var/lib/docker")
        return info

    def _root_dir(self) -> str:
        return self._root or str(self._info()["DockerRootDir"])

    def runtime_version(self) -> str:
        with self.connection.errors("asking Docker for its version"):
            version: Mapping[str, Any] = self.connection.api.version()
        return f"docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"

    def conditions(self) -> list[cri.RuntimeCondition]:
        try:
            with self.connection.errors("pinging Docker"):
                self.connection.api.ping()
        except CRIError as err:
            return [
                cri.RuntimeCondition(
                    type=kind, status=False, reason="DockerDaemonNotReachable", message=err.message
                )
                for kind in ("RuntimeReady", "NetworkReady")
            ]
        # Docker's bridge network comes with the daemon: up when the daemon is.
        return [
            cri.RuntimeCondition(type="RuntimeReady", status=True),
            cri.RuntimeCondition(type="NetworkReady", status=True),
        ]

    def info(self) -> dict[str, str]:
        info = self._info()
        keys = ("ServerVersion", "DockerRootDir", "Driver", "CgroupDriver", "CgroupVersion")
        details = {key: info.get(key) for key in keys}
        details.update(endpoint=self.connection.base_url, pauseImage=self.sandboxes.pause_image)
        return {
            "docker": json.dumps(details),
            # Docker API requests per CRI RPC since start (calls.py)
            "dockerCalls": json.dumps(self.connection.counter.snapshot()),
        }

    def runtime_handler_features(self, handler: str) -> cri.RuntimeHandlerFeatures:
        # Docker 20.10 cannot make a recursive read-only mount: pycri stages it
        return cri.RuntimeHandlerFeatures(recursive_read_only_mounts=self.staging.supported())

    def cgroup_driver(self) -> cri.CgroupDriver:
        return cri.SYSTEMD if self._info().get("CgroupDriver") == "systemd" else cri.CGROUPFS

    # -- pod sandboxes -------------------------------------------------------

    def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        with self.lists.changing():
            return self.sandboxes.run(config, runtime_handler)

    def stop_pod_sandbox(self, pod_id: str) -> None:
        with self.lists.changing():
            self.sandboxes.stop(pod_id)

    def remove_pod_sandbox(self, pod_id: str) -> None:
        with self.lists.changing():
            self.sandboxes.remove(pod_id)

    def pod_sandbox_status(
        self, pod_id: str, verbose: bool
    ) -> tuple[cri.PodSandboxStatus, dict[str, str]]:
        return self.sandboxes.status(pod_id, verbose)

    def list_pod_sandboxes(self, hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        return self.sandboxes.list(hint)

    # -- containers ----------------------------------------------------------

    def create_container(
        self, pod_id: str, config: cri.ContainerConfig, sandbox_config: cri.PodSandboxConfig
    ) -> str:
        with self.lists.changing():
            return self.containers.create(pod_id, config, sandbox_config)

    def start_container(self, container_id: str) -> None:
        with self.lists.changing():
            self.containers.start(container_id)

    def stop_container(self, container_id: str, timeout: int) -> None:
        with self.lists.changing():
            self.containers.stop(container_id, timeout)

    def remove_container(self, container_id: str) -> None:
        with self.lists.changing():
            self.containers.remove(container_id)

    def list_containers(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        return self.containers.list(hint)

    def container_status(
        self, container_id: str, verbose: bool
    ) -> tuple[cri.ContainerStatus, dict[str, str]]:
        return self.containers.status(container_id, verbose)

    def exec_sync(
        self, container_id: str, cmd: Sequence[str], timeout: int
    ) -> cri.ExecSyncResponse:
        return exec_sync(self.connection, container_id, cmd, timeout)

    def exec_stream(self, container_id: str, cmd: Sequence[str], io: StreamIO) -> int:
        return exec_stream(self.connection, container_id, cmd, io)

    def attach(self, container_id: str, io: StreamIO) -> None:
        attach(self.connection, container_id, io)

    def reopen_container_log(self, container_id: str) -> None:
        self.containers.reopen_log(container_id)

    def update_container_resources(
        self,
        container_id: str,
        linux: cri.LinuxContainerResources | None,
        annotations: Mapping[str, str],
    ) -> None:
        self.containers.update_resources(container_id, linux)

    def port_forward(self, pod_id: str, port: int, connection: PortConnection) -> None:
        pid = int(self.sandboxes.inspect(pod_id).get("State", {}).get("Pid") or 0)
        forward_into_pid_netns(pid, port, connection)

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        return self.stats.container_stats(container_ids)

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        return self.stats.pod_sandbox_stats(pod_ids)

    def metric_descriptors(self) -> list[cri.MetricDescriptor]:
        return core_metrics.descriptors()

    def pod_sandbox_metrics(self) -> list[cri.PodSandboxMetrics]:
        return self.metrics.pod_sandbox_metrics()

    # -- images --------------------------------------------------------------

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
        return self.images.pull_image(image, auth, progress)

    def remove_image(self, image: str) -> None:
        with self.lists.changing():
            self.images.remove_image(image)

    def image_fs_info(self) -> cri.ImageFsInfoResponse:
        return self.images.image_fs_info(self._root_dir())
