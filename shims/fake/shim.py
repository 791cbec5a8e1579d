"""FakeShim: an in-memory CRI runtime with simulated processes.

Pods, containers and images live in memory with the CRI's states, times,
exit codes and reasons; containers run a tiny shell (:mod:`pycri_shims.fake.sh`)
in threads, so that ``echo hi`` logs ``hi`` and ``sleep 5`` takes five seconds.
Tests steer it through :attr:`FakeShim.faults`, :meth:`FakeShim.crash` and the
``network_ready`` / ``runtime_ready`` attributes.

Options (``--shim-option KEY=VALUE``): ``preload=REF,REF`` (images already on
the node; default pause and busybox), ``registry=REF,REF`` (the only images a
pull finds; default any), ``pull_delay`` (seconds a pull takes),
``runtime_handlers=NAME,NAME``, ``pod_cidr`` (default 10.88.0.0/16),
``network_ready`` / ``runtime_ready`` (true/false), ``pause_image``.

This class is the facade: one module per CRI resource does the work, on one
:class:`~pycri_shims.fake.store.FakeStore` (see docs/design.md for the map).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self

from pycri import __version__
from pycri.api import api_pb2 as cri
from pycri.core import metrics as core_metrics
from pycri.core.sandbox_resources import SandboxResources
from pycri.shim import PullProgress, Shim
from pycri.streaming.streams import PortConnection, StreamIO
from pycri_shims.fake.containers import Containers
from pycri_shims.fake.execsync import exec_sync
from pycri_shims.fake.faults import FaultInjector
from pycri_shims.fake.image_store import DEFAULT_PAUSE_IMAGE, DEFAULT_PRELOAD, ImageStore
from pycri_shims.fake.images import FakeImages
from pycri_shims.fake.interactive import attach, attached, exec_stream, port_forward
from pycri_shims.fake.metrics import FakeMetrics
from pycri_shims.fake.sandboxes import Sandboxes
from pycri_shims.fake.stats import FakeStats
from pycri_shims.fake.store import FakeStore

__all__ = ["FakeShim"]

DEFAULT_POD_CIDR = "10.88.0.0/16"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _names(value: Iterable[str] | str | None) -> list[str]:
    """A list option given as an iterable or a comma-separated string."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]


def _flag(key: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"fake shim option {key}={value!r}: expected true or false")


class FakeShim(Shim):
    """An in-memory runtime with full CRI semantics, for tests and demos."""

    name: ClassVar[str] = "fake"
    #: records hand out one list entry per state (ContainerRecord.to_container)
    stable_list_entries: ClassVar[bool] = True

    def __init__(
        self,
        preload: Iterable[str] | str = DEFAULT_PRELOAD,
        registry: Iterable[str] | str | None = None,
        *,
        pull_delay: float = 0.0,
        runtime_handlers: Iterable[str] | str = (),
        pod_cidr: str = DEFAULT_POD_CIDR,
        network_ready: bool = True,
        runtime_ready: bool = True,
        pause_image: str = DEFAULT_PAUSE_IMAGE,
    ) -> None:
        super().__init__()
        self.sandbox_resources = SandboxResources(None)  # in memory, as everything here
        if pull_delay < 0:
            raise ValueError("pull_delay must not be negative")
        self.store = FakeStore(pod_cidr)
        image_store = ImageStore(None if registry is None else _names(registry))
        self._handlers = ["", *(h for h in _names(runtime_handlers) if h)]
        self.images = FakeImages(self.store, image_store, pause_image, pull_delay)
        # core sets emit_event after construction: look it up at each event
        self.containers = Containers(self.store, self.images, lambda e: self.emit_event(e))
        self.sandboxes = Sandboxes(self.store, self.images, self.containers, self._handlers)
        self.stats = FakeStats(self.store)
        self.metrics = FakeMetrics(self.store, lambda: self.images.pause_image)
        #: set False to report the NetworkReady / RuntimeReady condition as failing
        self.network_ready = network_ready
        self.runtime_ready = runtime_ready
        #: set False to play a runtime that cannot give SupplementalGroupsPolicy Strict
        self.strict_groups = True
        #: scripted failures and latency per RPC (applied in before_rpc)
        self.faults = FaultInjector()
        for ref in _names(preload):
            self.images.preload(ref)

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Self:
        """Build from ``--shim-option`` strings: ``preload=a,b``, ``pull_delay=0.1``..."""
        kwargs: dict[str, Any] = {}
        for key, value in options.items():
            if key in ("preload", "registry", "runtime_handlers"):
                kwargs[key] = _names(value)
            elif key == "pull_delay":
                try:
                    kwargs[key] = float(value)
                except ValueError:
                    raise ValueError(
                        f"fake shim option pull_delay={value!r}: not a number"
                    ) from None
            elif key in ("network_ready", "runtime_ready"):
                kwargs[key] = _flag(key, value)
            elif key in ("pod_cidr", "pause_image"):
                kwargs[key] = value
            else:
                raise ValueError(
                    f"unknown fake shim option {key!r}; known: preload, registry, pull_delay, "
                    "runtime_handlers, pod_cidr, network_ready, runtime_ready, pause_image"
                )
        return cls(**kwargs)

    @property
    def pull_delay(self) -> float:
        """Seconds a pull takes (a simulated download with progress)."""
        return self.images.pull_delay

    @pull_delay.setter
    def pull_delay(self, seconds: float) -> None:
        self.images.pull_delay = seconds

    @property
    def pause_image(self) -> str:
        """The sandbox image: pulled by RunPodSandbox when missing, reported pinned."""
        return self.images.pause_image

    @pause_image.setter
    def pause_image(self, reference: str) -> None:
        self.images.pause_image = reference

    def before_rpc(self, rpc: str) -> None:
        self.store.check_open()
        self.faults.apply(rpc)

    def close(self) -> None:
        """Kill every simulated process, wait for its thread, close the logs."""
        self.containers.close()

    # -- identity and health ---------------------------------------------------------

    def runtime_version(self) -> str:
        return f"fake {__version__}"

    def conditions(self) -> list[cri.RuntimeCondition]:
        runtime = cri.RuntimeCondition(type="RuntimeReady", status=self.runtime_ready)
        if not self.runtime_ready:
            runtime.reason = "RuntimeNotReady"
            runtime.message = "the fake runtime is marked not ready (runtime_ready = False)"
        network = cri.RuntimeCondition(type="NetworkReady", status=self.network_ready)
        if not self.network_ready:
            network.reason = "NetworkPluginNotReady"
            network.message = (
                "network plugin returns error: the fake network is marked not ready "
                "(network_ready = False)"
            )
        return [runtime, network]

    def info(self) -> dict[str, str]:
        store = self.store
        with store.lock:
            details = {
                "shim": self.name,
                "podCIDR": str(store.ipam.network),
                "registry": sorted(self.images.registry) if self.images.registry else None,
                "pullDelay": self.pull_delay,
                "images": self.images.count(),
                "sandboxes": len(store.sandboxes),
                "containers": len(store.containers),
            }
        return {"config": json.dumps(details)}

    def runtime_handlers(self) -> list[str]:
        return list(self._handlers)

    def runtime_handler_features(self, handler: str) -> cri.RuntimeHandlerFeatures:
        # simulated: core checks the rules, the container records the mounts as asked
        return cri.RuntimeHandlerFeatures(recursive_read_only_mounts=handler in self._handlers)

    def supplemental_groups_policy(self, runtime_handler: str | None = None) -> bool:
        return self.strict_groups  # processes get core.identity's groups

    def update_runtime_config(self, config: cri.RuntimeConfig) -> None:
        if config.network_config.pod_cidr:
            self.sandboxes.update_pod_cidr(config.network_config.pod_cidr)

    # -- pod sandboxes ----------------------------------------------------------------

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

    # -- containers --------------------------------------------------------------------

    def create_container(
        self, pod_id: str, config: cri.ContainerConfig, sandbox_config: cri.PodSandboxConfig
    ) -> str:
        return self.containers.create(pod_id, config)

    def start_container(self, container_id: str) -> None:
        self.containers.start(container_id)

    def stop_container(self, container_id: str, timeout: int) -> None:
        self.containers.stop(container_id, timeout)

    def remove_container(self, container_id: str) -> None:
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
        return exec_sync(self.store, container_id, cmd, timeout)

    def exec_stream(self, container_id: str, cmd: Sequence[str], io: StreamIO) -> int:
        return exec_stream(self.store, container_id, cmd, io)

    def attach(self, container_id: str, io: StreamIO) -> None:
        attach(self.store, container_id, io)

    def attached(self, container_id: str) -> int:
        """How many attach sessions follow the container now (for tests to sync on)."""
        return attached(self.store, container_id)

    def port_forward(self, pod_id: str, port: int, connection: PortConnection) -> None:
        port_forward(self.store, pod_id, port, connection)

    def reopen_container_log(self, container_id: str) -> None:
        self.containers.reopen_log(container_id)

    def update_container_resources(
        self,
        container_id: str,
        linux: cri.LinuxContainerResources | None,
        annotations: Mapping[str, str],
    ) -> None:
        self.containers.update_resources(container_id, linux)

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        return self.stats.container_stats(container_ids)

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        return self.stats.pod_sandbox_stats(pod_ids)

    def metric_descriptors(self) -> list[cri.MetricDescriptor]:
        return core_metrics.descriptors()

    def pod_sandbox_metrics(self) -> list[cri.PodSandboxMetrics]:
        return self.metrics.pod_sandbox_metrics()

    # -- test hooks ------------------------------------------------------------------------

    def crash(
        self,
        container_id: str,
        exit_code: int = 137,
        reason: str = "OOMKilled",
        message: str = "",
    ) -> None:
        """End a running container's process as if killed (by the OOM killer, by default)."""
        self.containers.crash(container_id, exit_code, reason, message)

    # -- images -------------------------------------------------------------------------------

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
        self.images.remove_image(image)

    def image_fs_info(self) -> cri.ImageFsInfoResponse:
        return self.images.image_fs_info()
