"""The interface a runtime implements to be served as a CRI endpoint.

A shim translates the CRI onto one engine (Docker, containerd, memory...).
It speaks in the generated ``runtime.v1`` messages and raises
:mod:`pycri.errors` exceptions. Everything every runtime shares —
validation, name reservation, list filters, idempotent stop/remove,
cascading pod stop/remove, state checks, id-prefix lookup, error
mapping — is done by :class:`pycri.core.CRIRuntime` before a shim is
called, so a shim only does what is specific to its engine.

Contract, in short:

* ids are strings the shim chooses (engines' own ids are best);
* a method given an id that does not exist raises ``NotFoundError``;
* ``list_*`` may use the filter as a hint to ask the engine for less,
  but core filters the result again, so returning more is correct;
* ``stop_pod_sandbox`` / ``remove_pod_sandbox`` are called after core has
  stopped / removed the pod's containers;
* optional capabilities default to ``UnimplementedError``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pycri.api import api_pb2 as cri
from pycri.errors import UnimplementedError
from pycri.streaming.streams import PortConnection, StreamIO

if TYPE_CHECKING:  # pycri.core imports this module
    from pycri.core.sandbox_resources import SandboxResources

__all__ = ["EventSink", "PullProgress", "Shim"]

EventSink = Callable[[cri.ContainerEventResponse], None]


@dataclass(frozen=True)
class PullProgress:
    """One step of an image pull, for progress bars."""

    image: str
    status: str
    current_bytes: int = 0
    total_bytes: int = 0


def _no_events(event: cri.ContainerEventResponse) -> None:
    """The sink a shim has until core attaches one."""


class Shim(abc.ABC):
    """Base class of every runtime shim (see the module docstring)."""

    #: the name the shim is registered under in the ``pycri.shims`` group
    name: ClassVar[str] = ""

    #: True when ``list_containers`` and ``list_pod_sandboxes`` return the very
    #: message instance they returned before for an entry that has not changed,
    #: and a new instance for one that has: a message, once returned, is never
    #: mutated. Core then keeps each entry's serialised bytes by identity
    #: (pycri.core.encoding) instead of serialising every entry on every list.
    stable_list_entries: ClassVar[bool] = False

    #: where core keeps what UpdatePodSandboxResources reports (pycri.core.sandbox_resources),
    #: next to the shim's own state; None (the default): that RPC answers UNIMPLEMENTED
    sandbox_resources: SandboxResources | None = None

    def __init__(self) -> None:
        self.emit_event: EventSink = _no_events

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Self:
        """Build the shim from ``--shim-option key=value`` pairs."""
        return cls(**options)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine connections and background threads."""

    def before_rpc(self, rpc: str) -> None:  # noqa: B027 - optional hook
        """Called by core before serving ``rpc``; the fake injects faults here."""

    def after_rpc(self, rpc: str) -> None:  # noqa: B027 - optional hook
        """Called by core when ``rpc`` is done, whatever its outcome (e.g. to log its cost)."""

    # -- identity and health ---------------------------------------------

    @abc.abstractmethod
    def runtime_version(self) -> str:
        """The engine's own version, e.g. ``docker 20.10.24``."""

    @abc.abstractmethod
    def conditions(self) -> list[cri.RuntimeCondition]:
        """``RuntimeReady`` and ``NetworkReady``, honestly."""

    def info(self) -> dict[str, str]:
        """Extra verbose information for ``Status`` (JSON values)."""
        return {}

    def runtime_handlers(self) -> list[str]:
        """Runtime handlers (RuntimeClass names); ``""`` is the default one."""
        return [""]

    def runtime_handler_features(self, handler: str) -> cri.RuntimeHandlerFeatures:
        """What ``handler`` really supports (``Status`` reports it; the kubelet trusts it).

        Core refuses a recursive read-only mount on a handler that does not
        say ``recursive_read_only_mounts``.
        """
        return cri.RuntimeHandlerFeatures(recursive_read_only_mounts=False, user_namespaces=False)

    def supplemental_groups_policy(self, runtime_handler: str | None = None) -> bool:
        """Whether Merge and Strict both really work (pycri.core.identity).

        For one runtime handler, or (None) for every handler served: Status
        reports one flag for the node, and core refuses Strict where this is False.
        """
        return False

    def cgroup_driver(self) -> cri.CgroupDriver:
        """``cri.SYSTEMD`` or ``cri.CGROUPFS``."""
        return cri.CGROUPFS

    def update_runtime_config(self, config: cri.RuntimeConfig) -> None:  # noqa: B027
        """Take the pod CIDR the kubelet hands out; most shims need nothing."""

    # -- pod sandboxes -----------------------------------------------------

    @abc.abstractmethod
    def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        """Create and start the sandbox; return its id."""

    @abc.abstractmethod
    def stop_pod_sandbox(self, pod_id: str) -> None:
        """Stop the sandbox (its containers are already stopped)."""

    @abc.abstractmethod
    def remove_pod_sandbox(self, pod_id: str) -> None:
        """Remove the stopped sandbox (its containers are already removed)."""

    @abc.abstractmethod
    def pod_sandbox_status(
        self, pod_id: str, verbose: bool
    ) -> tuple[cri.PodSandboxStatus, dict[str, str]]:
        """The sandbox's status and, when ``verbose``, extra info."""

    @abc.abstractmethod
    def list_pod_sandboxes(self, hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        """All sandboxes (or fewer, when ``hint`` lets the engine filter)."""

    def pod_sandbox_resources_store(self, pod_id: str) -> SandboxResources | None:
        """The store of ``pod_id``'s UpdatePodSandboxResources figures (a shim serving
        several engines answers the store of the one that owns the pod)."""
        return self.sandbox_resources

    def pod_sandbox(self, pod_id: str) -> cri.PodSandbox:
        """The sandbox as ListPodSandbox shows it (core's checks need its state and
        runtime handler); a shim that keeps a view of its engine answers it cheaper."""
        status, _ = self.pod_sandbox_status(pod_id, False)
        return cri.PodSandbox(
            id=status.id,
            metadata=status.metadata,
            state=status.state,
            created_at=status.created_at,
            labels=status.labels,
            annotations=status.annotations,
            runtime_handler=status.runtime_handler,
        )

    # -- containers ----------------------------------------------------------

    @abc.abstractmethod
    def create_container(
        self,
        pod_id: str,
        config: cri.ContainerConfig,
        sandbox_config: cri.PodSandboxConfig,
    ) -> str:
        """Create (not start) a container in the ready sandbox; return its id."""

    @abc.abstractmethod
    def start_container(self, container_id: str) -> None:
        """Start a created container."""

    @abc.abstractmethod
    def stop_container(self, container_id: str, timeout: int) -> None:
        """Stop a running container: SIGTERM, then SIGKILL after ``timeout`` s."""

    @abc.abstractmethod
    def remove_container(self, container_id: str) -> None:
        """Remove a container that is not running."""

    @abc.abstractmethod
    def list_containers(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        """All containers (or fewer, when ``hint`` lets the engine filter)."""

    @abc.abstractmethod
    def container_status(
        self, container_id: str, verbose: bool
    ) -> tuple[cri.ContainerStatus, dict[str, str]]:
        """The container's status and, when ``verbose``, extra info."""

    def container_state(self, container_id: str) -> cri.ContainerState:
        """The container's state alone (core's preconditions); cheaper where a shim can."""
        status, _ = self.container_status(container_id, False)
        return status.state

    @abc.abstractmethod
    def exec_sync(
        self, container_id: str, cmd: Sequence[str], timeout: int
    ) -> cri.ExecSyncResponse:
        """Run ``cmd`` in the running container; ``timeout`` s, 0 for none.

        Raise ``DeadlineExceededError`` when the timeout passes.
        """

    # -- streaming (Exec, Attach, PortForward) ------------------------------------
    #
    # The streaming server calls these in a thread of their own once a client
    # has connected to the URL the RPC returned; core has already checked the
    # container is running. Block until the session ends; when
    # ``io.cancelled`` / ``connection.cancelled`` is set the client has gone:
    # stop copying (kill an exec'd process) and return within seconds.
    # Raise pycri errors: the client is shown their message.

    def exec_stream(self, container_id: str, cmd: Sequence[str], io: StreamIO) -> int:
        """Run ``cmd`` in the container wired to ``io``; return its exit code.

        With ``io.tty`` the process gets a terminal: its output goes to
        ``io.stdout`` only, and each size from ``io.resize`` resizes it.
        ``io.stdin`` reaching EOF closes the process's stdin.
        """
        raise UnimplementedError(f"the {self.name} shim cannot exec interactively; use ExecSync")

    def attach(self, container_id: str, io: StreamIO) -> None:
        """Connect ``io`` to the container's main process until it exits or the client leaves.

        Output from now on goes to ``io.stdout``/``io.stderr``; ``io.stdin``
        feeds the process's stdin if the container was created with
        ``stdin``, and its EOF closes that stdin when ``stdin_once`` is set.
        """
        raise UnimplementedError(f"the {self.name} shim cannot attach to containers")

    def port_forward(self, pod_id: str, port: int, connection: PortConnection) -> None:
        """Connect to TCP ``port`` in the pod's network namespace and copy both ways.

        Return when the pod side has closed (or the client left); raise
        ``UnavailableError`` when nothing listens there.
        :func:`pycri.streaming.pump.splice` does the copying for a socket.
        """
        raise UnimplementedError(f"the {self.name} shim cannot forward ports")

    def reopen_container_log(self, container_id: str) -> None:
        raise UnimplementedError(f"the {self.name} shim cannot reopen container logs")

    def update_container_resources(
        self,
        container_id: str,
        linux: cri.LinuxContainerResources | None,
        annotations: Mapping[str, str],
    ) -> None:
        raise UnimplementedError(f"the {self.name} shim cannot update container resources")

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        """Stats for these containers, in one engine round trip if possible.

        Leave out any that no longer exist: they may be removed while the call runs.
        """
        raise UnimplementedError(f"the {self.name} shim does not report container stats")

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        raise UnimplementedError(f"the {self.name} shim does not report pod sandbox stats")

    def metric_descriptors(self) -> list[cri.MetricDescriptor]:
        """What ``pod_sandbox_metrics`` may report; ``pycri.core.metrics.descriptors()``
        for a shim that builds its metrics with that module."""
        raise UnimplementedError(f"the {self.name} shim does not report metrics")

    def pod_sandbox_metrics(self) -> list[cri.PodSandboxMetrics]:
        """Metrics of every ready pod and its containers (see ``pycri.core.metrics``)."""
        raise UnimplementedError(f"the {self.name} shim does not report metrics")

    # -- images --------------------------------------------------------------

    @abc.abstractmethod
    def list_images(self) -> list[cri.Image]:
        """Every image in the store."""

    @abc.abstractmethod
    def image_status(self, image: str) -> cri.Image | None:
        """The image named by a normalised reference or an id; None if absent."""

    @abc.abstractmethod
    def pull_image(
        self,
        image: str,
        auth: cri.AuthConfig | None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> str:
        """Pull a normalised reference; return the image ref (id or digest)."""

    @abc.abstractmethod
    def remove_image(self, image: str) -> None:
        """Remove the image and every tag of it; NotFoundError when absent."""

    @abc.abstractmethod
    def image_fs_info(self) -> cri.ImageFsInfoResponse:
        """Usage of the filesystem(s) that hold images and writable layers."""

    # -- helpers for subclasses ------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What ``pycri-server`` logs at start-up."""
        return {"shim": self.name, "engine": self.runtime_version()}
