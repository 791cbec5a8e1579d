"""Pod sandboxes on containerd: a pause container made by ``nerdctl run``.

A pod is a pause container on nerdctl's CNI network (cni.py frees what
nerdctl leaves of it); its containers join its namespaces. Run, Stop and
Remove are one nerdctl process each (plus the CNI cleanup), Status and
List none while the container view is fresh (lookup.py, view.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from pycri.api import api_pb2 as cri
from pycri.core.engine import SANDBOX_KIND, encode_labels
from pycri.core.engine_names import CONTAINERD_NAMES, sandbox_name
from pycri.errors import CRIError, InvalidArgumentError, NotFoundError
from pycri.streaming.netns import forward_into_pid_netns
from pycri.streaming.streams import PortConnection
from pycri_shims.nerdctl import args as build
from pycri_shims.nerdctl import convert
from pycri_shims.nerdctl import labels as labelcodec
from pycri_shims.nerdctl.cni import NETWORKS_LABEL, PodNetwork, networks_of
from pycri_shims.nerdctl.events import gone, not_running, started
from pycri_shims.nerdctl.images import ImageStore
from pycri_shims.nerdctl.lookup import Lookup
from pycri_shims.nerdctl.options import NerdctlOptions

__all__ = ["IMAGE_MISSING", "SANDBOX_STOP_TIMEOUT", "Sandboxes", "check_label_keys", "run_or_clean"]

log = logging.getLogger(__name__)

#: nerdctl's answer to ``run --pull never`` without the image
IMAGE_MISSING = "image not available"
#: seconds the pause container gets to exit on SIGTERM
SANDBOX_STOP_TIMEOUT = 10


def check_label_keys(*maps: Mapping[str, str]) -> None:
    """containerd labels are ``key=value`` on nerdctl's command line: no '=' in a key."""
    for mapping in maps:
        for key in mapping:
            if "=" in key:
                raise InvalidArgumentError(f"label/annotation key {key!r} contains '='")


def run_or_clean(lookup: Lookup, network: PodNetwork, args: list[str], name: str) -> str:
    """Run a ``run``/``create``; remove what a failure left behind under ``name``."""
    runner = lookup.runner

    def clean() -> None:
        release_network_of(lookup, network, name)
        runner.run(["rm", "-f", name], check=False)

    try:
        out = runner.run_despite_bystanders(args, before_retry=clean).stdout.strip()
    except CRIError as err:
        # a name taken by another container is not ours to remove; a missing
        # image stops nerdctl before it creates anything
        if "is already used by" not in err.message and IMAGE_MISSING not in err.message:
            clean()
        raise
    return out.splitlines()[-1]


def release_network_of(lookup: Lookup, network: PodNetwork, name: str) -> None:
    """The CNI state of a sandbox whose ``run`` failed after nerdctl set up its network.

    nerdctl's postStop hook frees the address then, but not the masquerade
    rule (cni.py); containers of a pod join its netns and hold none.
    """
    result = lookup.runner.run(["container", "inspect", name], check=False)
    try:
        found = result.json() if result.returncode == 0 else []
    except ValueError:
        found = []
    for data in found if isinstance(found, list) else []:
        networks = networks_of(convert.raw_labels(data))
        if not networks:
            continue
        try:
            network.release(data["Id"], networks)
        except CRIError as err:  # the run's own error is the one to report
            log.warning("cannot release the network of %s: %s", name, err.message)


class Sandboxes:
    """Run/Stop/Remove/Status/List PodSandbox, and PortForward into a pod's netns."""

    def __init__(
        self, lookup: Lookup, options: NerdctlOptions, images: ImageStore, network: PodNetwork
    ) -> None:
        self.lookup = lookup
        self.runner = lookup.runner
        self.view = lookup.view
        self.options = options
        self.images = images
        self.network = network

    def run(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        check_label_keys(config.labels, config.annotations)
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
            pod_id = run_or_clean(self.lookup, self.network, args, name)
        except NotFoundError as err:
            if IMAGE_MISSING not in err.message:
                raise
            self.images.sandbox_pull.pull(seen)
            pod_id = run_or_clean(self.lookup, self.network, args, name)
        self.view.claim(pod_id, name, self.options.pause_image, engine_labels)
        self.view.await_state(pod_id, started)
        return pod_id

    def _pod(self, pod_id: str) -> tuple[str, bool, dict[str, str]]:
        """(id, running, engine labels): from the view once it has nerdctl's labels."""
        entry = self.lookup.viewed(pod_id, SANDBOX_KIND)
        if entry is not None and NETWORKS_LABEL in (entry.labels or {}):
            return entry.id, not not_running(entry), dict(entry.labels or {})
        data = self.lookup.inspect(pod_id, SANDBOX_KIND)
        return data["Id"], bool((data.get("State") or {}).get("Running")), convert.raw_labels(data)

    def stop(self, pod_id: str) -> None:
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
        self.network.release(full_id, networks_of(labels))

    def remove(self, pod_id: str) -> None:
        full_id, running, labels = self._pod(pod_id)
        if running:
            self.stop(pod_id)  # core stops a ready pod first; this is the race
        else:
            # before rm: once the container is gone nothing names the pod's rules any more
            self.network.release(full_id, networks_of(labels))
        self.view.touched(full_id)
        self.runner.run(["rm", pod_id])
        self.view.await_state(full_id, gone)

    def status(self, pod_id: str, verbose: bool) -> tuple[cri.PodSandboxStatus, dict[str, str]]:
        data = self.lookup.inspect(pod_id, SANDBOX_KIND)
        status = convert.sandbox_status(data)
        info: dict[str, str] = {}
        if verbose:
            state = data.get("State") or {}
            info["info"] = json.dumps({"pid": state.get("Pid", 0), "nerdctl": data})
        return status, info

    def list(self, hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        pods = self.view.converted(SANDBOX_KIND, convert.pod_from_row)
        if pods is not None:
            return pods
        filters = build.ps_filters(hint.id, hint.label_selector) if hint else []
        return [convert.pod_from_row(row) for row in self.lookup.ps(SANDBOX_KIND, filters)]

    def get(self, pod_id: str) -> cri.PodSandbox | None:
        """Core's lookup of one pod from the view; None when it is not fresh."""
        entry = self.lookup.viewed(pod_id, SANDBOX_KIND)
        return None if entry is None else convert.pod_from_row(entry.row())

    def port_forward(self, pod_id: str, port: int, connection: PortConnection) -> None:
        state = self.lookup.inspect(pod_id, SANDBOX_KIND).get("State") or {}
        forward_into_pid_netns(int(state.get("Pid") or 0), port, connection)
