"""Pod sandboxes of the fake runtime: RunPodSandbox & co., and the pod network.

A pod gets an IP from the pod CIDR (none with the node's network) and a
:class:`~pycri_shims.fake.network.FakeNetwork`, the namespace its simulated
servers listen in; host-network pods share the node's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pycri.api import api_pb2 as cri
from pycri.errors import InvalidArgumentError
from pycri_shims.fake.containers import Containers
from pycri_shims.fake.images import FakeImages
from pycri_shims.fake.network import FakeNetwork
from pycri_shims.fake.state import IPAllocator, SandboxRecord
from pycri_shims.fake.store import FakeStore, created_at

__all__ = ["Sandboxes"]


class Sandboxes:
    """The pod sandboxes of one fake runtime, under the store's lock."""

    def __init__(
        self,
        store: FakeStore,
        images: FakeImages,
        containers: Containers,
        handlers: Sequence[str],
    ) -> None:
        self._store = store
        self._images = images
        self._containers = containers
        self._handlers = handlers
        #: the node's network namespace, shared by host-network pods
        self._host_network = FakeNetwork("host")

    def run(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        store = self._store
        with store.lock:
            store.check_open()
            if runtime_handler not in self._handlers:
                raise InvalidArgumentError(f"runtime handler {runtime_handler!r} is not configured")
            self._images.ensure_pause_image()
            host_network = config.linux.security_context.namespace_options.network == cri.NODE
            ip = "" if host_network else store.ipam.allocate()
            sandbox = SandboxRecord.create(config, runtime_handler, time.time_ns(), ip)
            name = f"{config.metadata.namespace}/{config.metadata.name}"
            sandbox.network = self._host_network if host_network else FakeNetwork(name)
            store.sandboxes[sandbox.id] = sandbox
            store.pod_listing.changed()
        return sandbox.id

    def stop(self, pod_id: str) -> None:
        store = self._store
        with store.lock:
            sandbox = store.sandbox(pod_id)
            running = [c.id for c in store.members(pod_id) if c.state == cri.CONTAINER_RUNNING]
        # core stops the containers first; used directly, the shim does it itself
        for container_id in running:
            self._containers.stop(container_id, 0, requested=False)
        with store.lock:
            if sandbox.state == cri.SANDBOX_READY:
                sandbox.state = cri.SANDBOX_NOTREADY
                store.pod_listing.changed()
                sandbox.stopped_at = time.time_ns()
            network = None if sandbox.host_network else sandbox.network
        if network is not None:
            network.close()  # the namespace goes with the sandbox

    def remove(self, pod_id: str) -> None:
        store = self._store
        self.stop(pod_id)
        with store.lock:
            sandbox = store.sandbox(pod_id)
            leftovers = [c.id for c in store.members(pod_id)]
        for container_id in leftovers:
            self._containers.remove(container_id)
        with store.lock:
            if sandbox.ip:
                store.ipam.release(sandbox.ip)
            store.sandboxes.pop(pod_id, None)
            store.pod_listing.changed()

    def status(self, pod_id: str, verbose: bool) -> tuple[cri.PodSandboxStatus, dict[str, str]]:
        with self._store.lock:
            sandbox = self._store.sandbox(pod_id)
            return sandbox.to_status(), sandbox.info(self._images.pause_image) if verbose else {}

    def list(self, hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        store = self._store
        with store.lock:
            if not hint:
                return store.pod_listing.get(
                    lambda: [s.to_pod() for s in sorted(store.sandboxes.values(), key=created_at)]
                )
            sandboxes = sorted(store.sandboxes.values(), key=created_at)
            return [s.to_pod() for s in sandboxes if s.id.startswith(hint.id)]

    def update_pod_cidr(self, cidr: str) -> None:
        """New pods get addresses from the CIDR the kubelet hands out (UpdateRuntimeConfig)."""
        with self._store.lock:
            if cidr != str(self._store.ipam.network):
                self._store.ipam = IPAllocator(cidr)
