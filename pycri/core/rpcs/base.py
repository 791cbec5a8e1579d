"""What every group of CRI RPCs shares: the ``rpc`` decorator, the runtime's state, lookups.

:class:`pycri.core.runtime.CRIRuntime` is made of one mixin per CRI resource
(the other modules of this package); each is a :class:`RuntimeBase`, so the
shim, the event buses and the helpers below are there for all of them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from pycri.api import api_pb2 as cri
from pycri.core import filters
from pycri.core.encoding import ListEncoder
from pycri.core.events import EventBus
from pycri.core.names import NameReservations
from pycri.core.validation import require_id
from pycri.errors import CRIError, FailedPreconditionError, InvalidArgumentError, NotFoundError
from pycri.shim import PullProgress, Shim

if TYPE_CHECKING:
    from pycri.streaming.server import StreamingServer

__all__ = ["FULL_ID_LENGTH", "STREAM_BATCH", "RuntimeBase", "batches", "rpc", "state_name"]

#: an id this long is whole: no prefix lookup
FULL_ID_LENGTH = 64
#: items per message of the Stream* list RPCs, well under gRPC's 4 MiB default
STREAM_BATCH = 200

P = ParamSpec("P")
Resp = TypeVar("Resp")
Runtime = TypeVar("Runtime", bound="RuntimeBase")
Method = Callable[Concatenate[Runtime, P], Resp]


def rpc(
    name: str, *, encoded: bool = False
) -> Callable[[Method[Runtime, P, Resp]], Method[Runtime, P, Resp]]:
    """Mark a method as the handler of RPC ``name``.

    It lets the shim inject faults first (``Shim.before_rpc``) and labels
    any CRIError raised with the RPC's name. An ``encoded`` handler returns
    the response already serialised, for the gRPC servicer to send as is;
    it must answer exactly what the plain handler of the same RPC answers.
    """

    def decorate(fn: Method[Runtime, P, Resp]) -> Method[Runtime, P, Resp]:
        @functools.wraps(fn)
        def handler(self: Runtime, /, *args: P.args, **kwargs: P.kwargs) -> Resp:
            self.shim.before_rpc(name)
            try:
                return fn(self, *args, **kwargs)
            except CRIError as err:
                if err.rpc is None:
                    err.rpc = name
                raise
            finally:
                self.shim.after_rpc(name)

        if encoded:
            handler.rpc_encoded = name  # type: ignore[attr-defined]
        else:
            handler.rpc_name = name  # type: ignore[attr-defined]
        return handler

    return decorate


def state_name(value: int, enum: type) -> str:
    return str(enum.Name(value))  # type: ignore[attr-defined]


Item = TypeVar("Item")


def batches(items: Sequence[Item]) -> Iterator[Sequence[Item]]:
    """``items`` in messages of :data:`STREAM_BATCH`, for the Stream* RPCs."""
    for start in range(0, len(items), STREAM_BATCH):
        yield items[start : start + STREAM_BATCH]


class RuntimeBase:
    """The state of one runtime over one shim, and what its RPC groups share."""

    def __init__(
        self,
        shim: Shim,
        *,
        allow_privileged: bool = False,
        streaming: StreamingServer | None = None,
    ) -> None:
        self.shim = shim
        self.allow_privileged = allow_privileged
        self.streaming = streaming
        self.events: EventBus[cri.ContainerEventResponse] = EventBus()
        #: image pull progress, for clients that draw a progress bar (pycri.v1.PullProgress)
        self.pulls: EventBus[PullProgress] = EventBus()
        shim.emit_event = self.events.publish
        self._names = NameReservations()
        self._versions: dict[str, bytes] = {}
        self._container_list = ListEncoder(cri.ListContainersResponse, "containers")
        self._pod_list = ListEncoder(cri.ListPodSandboxResponse, "items")

    @classmethod
    def _members(cls) -> Iterator[tuple[str, Any]]:
        # every RPC group's methods: the class is made of one mixin per resource
        for klass in reversed(cls.__mro__):
            yield from vars(klass).items()

    @classmethod
    def rpc_handlers(cls) -> dict[str, str]:
        """RPC name -> method name, for every RPC this class serves."""
        return {
            member.rpc_name: attr for attr, member in cls._members() if hasattr(member, "rpc_name")
        }

    @classmethod
    def encoded_rpc_handlers(cls) -> dict[str, str]:
        """RPC name -> name of the method answering it with the serialised response.

        The gRPC servicer prefers these (the hot RPCs: the kubelet relists
        every second); each answers exactly what the plain handler does.
        """
        return {
            member.rpc_encoded: attr
            for attr, member in cls._members()
            if hasattr(member, "rpc_encoded")
        }

    def close(self) -> None:
        self.shim.close()

    # -- lookups -------------------------------------------------------------

    def _resolve_pod(self, pod_id: str, field: str = "pod_sandbox_id") -> str:
        require_id(pod_id, field)
        if len(pod_id) >= FULL_ID_LENGTH:
            return pod_id
        ids = [p.id for p in self.shim.list_pod_sandboxes(cri.PodSandboxFilter(id=pod_id))]
        return self._pick(pod_id, ids, "pod sandbox")

    def _resolve_container(self, container_id: str, field: str = "container_id") -> str:
        require_id(container_id, field)
        if len(container_id) >= FULL_ID_LENGTH:
            return container_id
        ids = [c.id for c in self.shim.list_containers(cri.ContainerFilter(id=container_id))]
        return self._pick(container_id, ids, "container")

    @staticmethod
    def _pick(prefix: str, ids: list[str], what: str) -> str:
        matches = sorted({i for i in ids if i.startswith(prefix)})
        if prefix in matches:
            return prefix
        if not matches:
            raise NotFoundError(f"{what} {prefix!r} not found")
        if len(matches) > 1:
            raise InvalidArgumentError(
                f"{what} id prefix {prefix!r} is ambiguous: it matches {len(matches)} ids"
            )
        return matches[0]

    def _container_state(self, container_id: str) -> cri.ContainerState:
        return self.shim.container_state(container_id)

    def _publish(self, container_id: str, kind: cri.ContainerEventType) -> None:
        self.events.publish(
            cri.ContainerEventResponse(
                container_id=container_id,
                container_event_type=kind,
                created_at=time.time_ns(),
            )
        )

    # -- what several RPCs do ----------------------------------------------------

    def _pod_containers(self, pod_id: str) -> list[cri.Container]:
        hint = cri.ContainerFilter(pod_sandbox_id=pod_id)
        return filters.filter_containers(self.shim.list_containers(hint), hint)

    def _stop_container(self, container_id: str, timeout: int) -> None:
        self.shim.stop_container(container_id, timeout)
        self._publish(container_id, cri.CONTAINER_STOPPED_EVENT)

    def _remove_container(self, container_id: str, state: cri.ContainerState) -> None:
        if state == cri.CONTAINER_RUNNING:
            self._stop_container(container_id, 0)
        self.shim.remove_container(container_id)
        self._publish(container_id, cri.CONTAINER_DELETED_EVENT)

    def _require_running(self, container_id: str, action: str) -> None:
        # the full status, not a shim's cached state: the container may have exited just now
        status, _ = self.shim.container_status(container_id, False)
        state = status.state
        if state != cri.CONTAINER_RUNNING:
            raise FailedPreconditionError(
                f"container {container_id[:13]} is {state_name(state, cri.ContainerState)}: "
                f"cannot {action} a container that is not running"
            )
