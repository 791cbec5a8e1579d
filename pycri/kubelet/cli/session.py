"""What every ``pycri-kubelet`` command shares: node options, the client, the Kubelet, errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import IO, Any, TypeVar

import click

from pycri.client import CRIClient
from pycri.errors import CRIError, UnavailableError
from pycri.kubelet.cli.settings import KubeletSettings, resolve_settings
from pycri.kubelet.model.manifest import ManifestError
from pycri.kubelet.sync.kubelet import Kubelet
from pycri.kubelet.sync.lock import KubeletLock

__all__ = ["KubectlSession", "KubeletCLIError", "explain", "node_options", "warn"]

R = TypeVar("R")


class KubeletCLIError(click.ClickException):
    """``error: <message>`` on stderr and exit 1, as kubectl reports failures."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


class KubectlSession:
    """One ``pycri-kubelet`` command (a kubectl verb, or ``serve``): its settings, and
    the client and Kubelet built from them on demand.

    pycrictl's counterpart is :class:`pycri.cli.session.CrictlSession`.
    """

    def __init__(self, settings: KubeletSettings) -> None:
        self.settings = settings
        self._client: CRIClient | None = None
        self._kubelet: Kubelet | None = None
        #: for the daemon: pods synced at once, seconds between relists
        self.workers = 16
        self.sync_period = 1.0
        self.lock = KubeletLock(settings.paths.lock_file)

    @property
    def client(self) -> CRIClient:
        if self._client is None:
            s = self.settings
            self._client = CRIClient(s.endpoint, image_endpoint=s.image_endpoint, timeout=s.timeout)
        return self._client

    @property
    def kubelet(self) -> Kubelet:
        if self._kubelet is None:
            s = self.settings
            self._kubelet = Kubelet(
                self.client,
                manifest_dir=s.manifest_dir,
                root_dir=s.root_dir,
                log_root=s.log_root,
                node_name=s.node_name,
                workers=self.workers,
                sync_period=self.sync_period,
            )
        return self._kubelet

    def runtime_name(self) -> str:
        """The prefix of container ids in statuses (``containerd://``), as the kubelet's."""
        try:
            return self.client.version().runtime_name or "cri"
        except CRIError:
            return "cri"

    def direct(self) -> bool:
        """Take the writer's lock: True when no daemon runs and this command syncs itself."""
        return self.lock.acquire()

    def close(self) -> None:
        self.lock.release()
        if self._kubelet is not None:
            self._kubelet.close()
        if self._client is not None:
            self._client.close()


def explain(err: Exception, settings: KubeletSettings) -> str:
    if isinstance(err, UnavailableError):
        return (
            f"{err.message} (endpoint {settings.endpoint}, from {settings.endpoint_source}; "
            "set it with --endpoint or CONTAINER_RUNTIME_ENDPOINT)"
        )
    return str(err)


def node_options(func: Callable[..., R]) -> Callable[..., R]:
    """Add the node options to a command and pass it a ``session`` instead."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        settings = resolve_settings(
            endpoint=kwargs.pop("endpoint"),
            image_endpoint=kwargs.pop("image_endpoint"),
            root_dir=kwargs.pop("root_dir"),
            manifest_dir=kwargs.pop("manifests"),
            log_root=kwargs.pop("log_root"),
            node_name=kwargs.pop("node_name"),
            timeout=kwargs.pop("timeout"),
        )
        session = KubectlSession(settings)
        try:
            return func(*args, session=session, **kwargs)
        except (CRIError, ManifestError, OSError) as err:
            raise KubeletCLIError(explain(err, settings)) from None
        finally:
            session.close()

    options = [
        click.option(
            "--endpoint",
            "-r",
            envvar="CONTAINER_RUNTIME_ENDPOINT",
            help="CRI endpoint (unix:///path or tcp://host:port); "
            "default: the daemon's, else unix:///run/containerd/containerd.sock.",
        ),
        click.option(
            "--image-endpoint", envvar="IMAGE_SERVICE_ENDPOINT", help="CRI image endpoint."
        ),
        click.option(
            "--root-dir",
            envvar="PYCRI_KUBELET_ROOT_DIR",
            help="Kubelet state: pod volumes, state, daemon settings "
            "(default /var/lib/pycri-kubelet as root).",
        ),
        click.option(
            "--manifests",
            envvar="PYCRI_KUBELET_MANIFESTS",
            help="Manifest directory, the desired state (default ROOT/manifests).",
        ),
        click.option(
            "--log-root",
            envvar="PYCRI_KUBELET_LOG_ROOT",
            help="Pod log directories (default /var/log/pods as root).",
        ),
        click.option(
            "--node-name", envvar="PYCRI_KUBELET_NODE_NAME", help="Node name (default: hostname)."
        ),
        click.option(
            "--timeout", type=float, default=10.0, show_default=True, help="CRI call timeout (s)."
        ),
    ]
    decorated: Callable[..., R] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated
