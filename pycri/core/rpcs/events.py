"""GetContainerEvents: the container lifecycle events the other RPCs publish."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pycri.api import api_pb2 as cri
from pycri.core.rpcs.base import RuntimeBase, rpc

__all__ = ["EventRPCs"]


class EventRPCs(RuntimeBase):
    """Container events, as each client subscribes to them."""

    @rpc("GetContainerEvents")
    def get_container_events(
        self, request: cri.GetEventsRequest, is_active: Callable[[], bool]
    ) -> Iterator[cri.ContainerEventResponse]:
        subscription = self.events.subscribe()
        try:
            for event in subscription.events():
                if not is_active():
                    return
                if event is not None:
                    yield event
        finally:
            subscription.close()
