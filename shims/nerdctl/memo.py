"""What the shim learnt by a nerdctl process, kept while the container view vouches for it.

Both memos are caches of caches: they answer only while the view
(view.py) is fresh, and forget on the events that could change what
they hold, so a warm ContainerStatus, PodSandboxStatus, ImageStatus or
ListImages starts no process and never answers older data than a process
would.

* :class:`InspectMemo` keeps the last ``container inspect`` of each pod
  and container. ANY event of that id drops it (the view calls
  :meth:`InspectMemo.drop`), so do the shim's own changes of it and every
  rebuild or staleness of the view (:meth:`InspectMemo.clear`). An inspect
  that raced an event is not kept: each id gets a version when its inspect
  starts, and a drop meanwhile takes the version away.
* :class:`ImageMemo` keeps image lookups while no image event of the
  namespace has come since (containerd's ``/images/`` events, a rebuild).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pycri_shims.nerdctl.view import ContainerView

__all__ = ["ImageMemo", "InspectMemo"]

T = TypeVar("T")


class InspectMemo:
    """``container inspect`` data per full id, until any change of that id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, dict[str, Any]] = {}
        #: the version of each id whose inspect is running or kept; a drop removes it
        self._versions: dict[str, int] = {}
        self._counter = itertools.count(1)

    def get(
        self, object_id: str, look: Callable[[str], dict[str, Any]], trusted: bool
    ) -> dict[str, Any]:
        """The kept data of ``object_id``, or ``look``'s (kept when no drop came meanwhile).

        ``trusted``: the view is fresh and knows the id; otherwise ``look`` answers
        and nothing is kept (no event would tell when it went stale).
        """
        if not trusted:
            return look(object_id)
        with self._lock:
            kept = self._kept.get(object_id)
            if kept is not None:
                return kept
            version = self._versions.setdefault(object_id, next(self._counter))
        data = look(object_id)
        with self._lock:
            if self._versions.get(object_id) == version:
                self._kept[object_id] = data
        return data

    def drop(self, object_id: str) -> None:
        """Something happened to ``object_id``: forget it, and any inspect of it under way."""
        with self._lock:
            self._kept.pop(object_id, None)
            self._versions.pop(object_id, None)

    def clear(self) -> None:
        """The view was rebuilt or went stale: events may have been missed."""
        with self._lock:
            self._kept.clear()
            self._versions.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)


class ImageMemo(Generic[T]):
    """Image lookups kept while the view is fresh and no image of the namespace has
    changed since (containerd's /images/ events; a rebuild forgets them all)."""

    def __init__(self, view: ContainerView) -> None:
        self.view = view
        self._kept: dict[str, tuple[int, T]] = {}
        self._lock = threading.Lock()

    def get(self, ref: str, look: Callable[[str], T | None]) -> T | None:
        epoch = self.view.image_epoch()
        if epoch is not None:
            with self._lock:
                kept = self._kept.get(ref)
            if kept is not None and kept[0] == epoch:
                return kept[1]
        value = look(ref)
        if value is not None and epoch is not None and self.view.image_epoch() == epoch:
            with self._lock:
                self._kept[ref] = (epoch, value)
        return value

    def clear(self) -> None:
        """The shim itself pulled or removed an image (its event may still be on its way):
        forget, and keep no lookup that was under way (the epoch moves on)."""
        self.view.images_changed()
        with self._lock:
            self._kept.clear()
