"""Several shims behind one CRI endpoint, chosen per pod by the runtime handler.

The CRI's ``runtime_handler`` (a Kubernetes RuntimeClass) picks the shim a
pod runs on: ``pycri-server --shim docker --shim nerdctl --default-handler
docker`` serves Docker and containerd side by side, so pods can move from
one to the other without their manifests changing. The router is itself a
Shim, so core's rules apply unchanged above it.

Which shim owns an id is remembered as it is learnt and otherwise found by
asking each shim: a cache of what the engines already know, not state.
Images have no handler in most requests, so a pull goes to every shim (a
pod may run on any of them), and a removal too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pycri.api import api_pb2 as cri
from pycri.core.sandbox_resources import SandboxResources
from pycri.errors import CRIError, InvalidArgumentError, NotFoundError, UnimplementedError
from pycri.shim import PullProgress, Shim
from pycri.streaming.streams import PortConnection, StreamIO

__all__ = ["HandlerRouter"]

T = TypeVar("T")


class HandlerRouter(Shim):
    """Routes every call to the shim of the pod's runtime handler."""

    name = "router"

    def __init__(self, shims: Mapping[str, Shim], default: str) -> None:
        super().__init__()
        if not shims:
            raise ValueError("a router needs at least one shim")
        if default not in shims:
            raise ValueError(f"default handler {default!r} is not one of {sorted(shims)}")
        if "" in shims:
            raise ValueError("the empty handler name is the default handler's alias")
        self.shims = dict(shims)
        self.default = default
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()
        for shim in self.shims.values():
            shim.emit_event = lambda event: self.emit_event(event)

    # -- routing ---------------------------------------------------------------

    def _handler(self, runtime_handler: str) -> str:
        handler = runtime_handler or self.default
        if handler not in self.shims:
            raise InvalidArgumentError(
                f"runtime_handler {runtime_handler!r} is not configured; "
                f"available: {', '.join(repr(h) for h in self.runtime_handlers())}"
            )
        return handler

    def _remember(self, object_id: str, handler: str) -> None:
        with self._lock:
            self._owners[object_id] = handler

    def _forget(self, object_id: str) -> None:
        with self._lock:
            self._owners.pop(object_id, None)

    def _owner(self, object_id: str, probe: Callable[[Shim, str], object]) -> tuple[str, Shim]:
        with self._lock:
            handler = self._owners.get(object_id)
        if handler is not None:
            return handler, self.shims[handler]
        for handler, shim in self.shims.items():
            try:
                probe(shim, object_id)
            except NotFoundError:
                continue
            self._remember(object_id, handler)
            return handler, shim
        raise NotFoundError(f"{object_id[:13]} not found on any runtime handler")

    def _pod_owner(self, pod_id: str) -> tuple[str, Shim]:
        return self._owner(pod_id, lambda shim, i: shim.pod_sandbox_status(i, False))

    def _container_owner(self, container_id: str) -> tuple[str, Shim]:
        return self._owner(container_id, lambda shim, i: shim.container_status(i, False))

    def _each(self, call: Callable[[str, Shim], T]) -> list[T]:
        return [call(handler, shim) for handler, shim in self.shims.items()]

    # -- identity and health -----------------------------------------------------

    def close(self) -> None:
        for shim in self.shims.values():
            shim.close()

    def before_rpc(self, rpc: str) -> None:
        for shim in self.shims.values():
            shim.before_rpc(rpc)

    def after_rpc(self, rpc: str) -> None:
        for shim in self.shims.values():
            shim.after_rpc(rpc)

    def runtime_version(self) -> str:
        return "; ".join(self._each(lambda h, s: f"{h}: {_safe(s.runtime_version)}"))

    def conditions(self) -> list[cri.RuntimeCondition]:
        """A condition holds when it holds for every handler; the message says where not."""
        merged: dict[str, list[tuple[str, cri.RuntimeCondition]]] = {}
        for handler, shim in self.shims.items():
            for condition in shim.conditions():
                merged.setdefault(condition.type, []).append((handler, condition))
        out = []
        for kind, entries in merged.items():
            failing = [(h, c) for h, c in entries if not c.status]
            out.append(
                cri.RuntimeCondition(
                    type=kind,
                    status=not failing and len(entries) == len(self.shims),
                    reason=failing[0][1].reason if failing else "",
                    message="; ".join(f"{h}: {c.message or c.reason}" for h, c in failing),
                )
            )
        return out

    def info(self) -> dict[str, str]:
        per_handler = {h: s.info() for h, s in self.shims.items()}
        return {"handlers": json.dumps(per_handler), "defaultHandler": self.default}

    def runtime_handlers(self) -> list[str]:
        return ["", *self.shims]

    def runtime_handler_features(self, handler: str) -> cri.RuntimeHandlerFeatures:
        # each shim serves its handler as its default one
        return self.shims[self._handler(handler)].runtime_handler_features("")

    def supplemental_groups_policy(self, runtime_handler: str | None = None) -> bool:
        """Per handler; for the node (the kubelet reads one flag) only if every handler has it."""
        if runtime_handler is None:
            return all(shim.supplemental_groups_policy() for shim in self.shims.values())
        return self.shims[self._handler(runtime_handler)].supplemental_groups_policy()

    def cgroup_driver(self) -> cri.CgroupDriver:
        return self.shims[self.default].cgroup_driver()

    def update_runtime_config(self, config: cri.RuntimeConfig) -> None:
        self._each(lambda h, s: s.update_runtime_config(config))

    # -- pod sandboxes -----------------------------------------------------------

    def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        handler = self._handler(runtime_handler)
        pod_id = self.shims[handler].run_pod_sandbox(config, "")
        self._remember(pod_id, handler)
        return pod_id

    def stop_pod_sandbox(self, pod_id: str) -> None:
        self._pod_owner(pod_id)[1].stop_pod_sandbox(pod_id)

    def remove_pod_sandbox(self, pod_id: str) -> None:
        self._pod_owner(pod_id)[1].remove_pod_sandbox(pod_id)
        self._forget(pod_id)

    def pod_sandbox_status(
        self, pod_id: str, verbose: bool
    ) -> tuple[cri.PodSandboxStatus, dict[str, str]]:
        handler, shim = self._pod_owner(pod_id)
        status, info = shim.pod_sandbox_status(pod_id, verbose)
        status.runtime_handler = handler
        return status, info

    def pod_sandbox_resources_store(self, pod_id: str) -> SandboxResources | None:
        try:
            return self._pod_owner(pod_id)[1].pod_sandbox_resources_store(pod_id)
        except NotFoundError:
            return None

    def list_pod_sandboxes(self, hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        pods: list[cri.PodSandbox] = []
        for handler, shim in self.shims.items():
            for pod in shim.list_pod_sandboxes(hint):
                entry = cri.PodSandbox()
                entry.CopyFrom(pod)
                entry.runtime_handler = handler
                self._remember(pod.id, handler)
                pods.append(entry)
        return pods

    # -- containers ----------------------------------------------------------------

    def create_container(
        self, pod_id: str, config: cri.ContainerConfig, sandbox_config: cri.PodSandboxConfig
    ) -> str:
        handler, shim = self._pod_owner(pod_id)
        container_id = shim.create_container(pod_id, config, sandbox_config)
        self._remember(container_id, handler)
        return container_id

    def start_container(self, container_id: str) -> None:
        self._container_owner(container_id)[1].start_container(container_id)

    def stop_container(self, container_id: str, timeout: int) -> None:
        self._container_owner(container_id)[1].stop_container(container_id, timeout)

    def remove_container(self, container_id: str) -> None:
        self._container_owner(container_id)[1].remove_container(container_id)
        self._forget(container_id)

    def list_containers(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        containers: list[cri.Container] = []
        for handler, shim in self.shims.items():
            for container in shim.list_containers(hint):
                self._remember(container.id, handler)
                containers.append(container)
        return containers

    def container_status(
        self, container_id: str, verbose: bool
    ) -> tuple[cri.ContainerStatus, dict[str, str]]:
        return self._container_owner(container_id)[1].container_status(container_id, verbose)

    def exec_sync(
        self, container_id: str, cmd: Sequence[str], timeout: int
    ) -> cri.ExecSyncResponse:
        return self._container_owner(container_id)[1].exec_sync(container_id, cmd, timeout)

    def reopen_container_log(self, container_id: str) -> None:
        self._container_owner(container_id)[1].reopen_container_log(container_id)

    def update_container_resources(
        self,
        container_id: str,
        linux: cri.LinuxContainerResources | None,
        annotations: Mapping[str, str],
    ) -> None:
        shim = self._container_owner(container_id)[1]
        shim.update_container_resources(container_id, linux, annotations)

    def exec_stream(self, container_id: str, cmd: Sequence[str], io: StreamIO) -> int:
        return self._container_owner(container_id)[1].exec_stream(container_id, cmd, io)

    def attach(self, container_id: str, io: StreamIO) -> None:
        self._container_owner(container_id)[1].attach(container_id, io)

    def port_forward(self, pod_id: str, port: int, connection: PortConnection) -> None:
        self._pod_owner(pod_id)[1].port_forward(pod_id, port, connection)

    def container_stats(self, container_ids: Sequence[str]) -> list[cri.ContainerStats]:
        groups = _group(container_ids, lambda i: self._container_owner(i)[0])
        return [s for h, ids in groups.items() for s in self.shims[h].container_stats(ids)]

    def pod_sandbox_stats(self, pod_ids: Sequence[str]) -> list[cri.PodSandboxStats]:
        groups = _group(pod_ids, lambda i: self._pod_owner(i)[0])
        return [s for h, ids in groups.items() for s in self.shims[h].pod_sandbox_stats(ids)]

    def _metric_shims(self) -> list[Shim]:
        """The shims that report metrics (a third party's may not)."""
        out = []
        for shim in self.shims.values():
            try:
                shim.metric_descriptors()
            except UnimplementedError:
                continue
            out.append(shim)
        if not out:
            raise UnimplementedError("none of this server's shims reports metrics")
        return out

    def metric_descriptors(self) -> list[cri.MetricDescriptor]:
        merged: dict[str, cri.MetricDescriptor] = {}
        for shim in self._metric_shims():
            for desc in shim.metric_descriptors():
                merged.setdefault(desc.name, desc)
        return list(merged.values())

    def pod_sandbox_metrics(self) -> list[cri.PodSandboxMetrics]:
        return [m for shim in self._metric_shims() for m in shim.pod_sandbox_metrics()]

    # -- images: every handler's engine ------------------------------------------

    def list_images(self) -> list[cri.Image]:
        by_id: dict[str, cri.Image] = {}
        for images in self._each(lambda h, s: s.list_images()):
            for image in images:
                known = by_id.get(image.id)
                if known is None:
                    by_id[image.id] = image
                else:  # the same image in two engines: one entry, every name
                    known.repo_tags.extend(t for t in image.repo_tags if t not in known.repo_tags)
                    known.repo_digests.extend(
                        d for d in image.repo_digests if d not in known.repo_digests
                    )
        return list(by_id.values())

    def image_status(self, image: str) -> cri.Image | None:
        default = self.shims[self.default]
        others = [s for h, s in self.shims.items() if h != self.default]
        for shim in (default, *others):
            found = shim.image_status(image)
            if found is not None:
                return found
        return None

    def pull_image(
        self,
        image: str,
        auth: cri.AuthConfig | None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> str:
        """Pull into every handler's engine at once; the default handler's ref is returned."""
        with ThreadPoolExecutor(len(self.shims), thread_name_prefix="pycri-pull") as pool:
            futures = {
                h: pool.submit(s.pull_image, image, auth, progress if h == self.default else None)
                for h, s in self.shims.items()
            }
            refs = {h: f.result() for h, f in futures.items()}
        return refs[self.default]

    def remove_image(self, image: str) -> None:
        removed = False
        for shim in self.shims.values():
            try:
                shim.remove_image(image)
                removed = True
            except NotFoundError:
                continue
        if not removed:
            raise NotFoundError(f"image {image!r} not found on any runtime handler")

    def image_fs_info(self) -> cri.ImageFsInfoResponse:
        merged = cri.ImageFsInfoResponse()
        for info in self._each(lambda h, s: s.image_fs_info()):
            merged.image_filesystems.extend(info.image_filesystems)
            merged.container_filesystems.extend(info.container_filesystems)
        return merged


def _group(ids: Iterable[str], owner: Callable[[str], str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for object_id in ids:
        try:
            groups.setdefault(owner(object_id), []).append(object_id)
        except NotFoundError:
            continue
    return groups


def _safe(call: Callable[[], str]) -> str:
    try:
        return call()
    except CRIError as err:
        return f"unreachable ({err.message})"
