"""How every resource module finds pods and containers: the view first, nerdctl if need be.

The container view (view.py) answers while it is fresh; otherwise one
``nerdctl ps`` or ``container inspect`` does. A ``container inspect`` is
kept while the view vouches for it (memo.py). runc's state files say
whether a container's init runs, for the price of a read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pycri.core.engine import KIND_LABEL, SANDBOX_KIND
from pycri.errors import NotFoundError
from pycri_shims.nerdctl import convert
from pycri_shims.nerdctl.events import EngineEvent, Entry
from pycri_shims.nerdctl.host import RuncState
from pycri_shims.nerdctl.options import NerdctlOptions
from pycri_shims.nerdctl.runner import NerdctlRunner
from pycri_shims.nerdctl.view import ContainerView

__all__ = ["Lookup"]


def _not_found(object_id: str, kind: str) -> NotFoundError:
    what = "pod sandbox" if kind == SANDBOX_KIND else "container"
    return NotFoundError(f"{what} {object_id[:13]} not found")


class Lookup:
    """Pods and containers of the shim's namespace, by id or all of them; owns the view."""

    def __init__(
        self,
        runner: NerdctlRunner,
        options: NerdctlOptions,
        on_event: Callable[[EngineEvent], None] | None = None,
    ) -> None:
        self.runner = runner
        self.options = options
        #: lists and lookups without a process while it is fresh (view.py); rebuilt by ps
        self.view = ContainerView(
            runner,
            options.namespace,
            lambda: self.ps(None),
            on_event,
            engine_socket=options.address.removeprefix("unix://"),
        )

    def inspect(self, object_id: str, kind: str) -> dict[str, Any]:
        """``container inspect`` of a pycri pod or container (NotFoundError otherwise);
        none while the view is fresh and has kept it since the id's last event (memo.py)."""
        data = self.view.inspect(object_id, self._inspect_any)
        if convert.kind_of(data) != kind:
            raise _not_found(object_id, kind)
        return data

    def _inspect_any(self, object_id: str) -> dict[str, Any]:
        found = self.runner.json(["container", "inspect", object_id])
        if not found:
            raise NotFoundError(f"{object_id[:13]} not found")
        data: dict[str, Any] = found[0]
        return data

    def viewed(self, object_id: str, kind: str) -> Entry | None:
        """The view's entry of a pycri pod or container (NotFoundError otherwise);
        None when the view is not fresh (ask nerdctl then)."""
        fresh, entry = self.view.entry(object_id)
        if not fresh:
            return None
        if entry is None or convert.kind_of(entry.row()) != kind:
            raise _not_found(object_id, kind)
        return entry

    def ps(self, kind: str | None, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        """``nerdctl ps -a`` rows, of pycri ``kind`` alone when given."""
        args = ["ps", "-a", "--no-trunc", "--format", "json"]
        if kind:
            args += ["--filter", f"label={KIND_LABEL}={kind}"]
        for f in filters:
            args += ["--filter", f]
        rows: list[dict[str, Any]] = self.runner.run_despite_bystanders(args).json_lines()
        # a container removed while ps ran can come out as a row without an id (seen under
        # load: its stats call then ran `container inspect ""`)
        return [row for row in rows if row.get("ID")]

    def names(self, only_created: bool = False) -> set[str]:
        """Names of all the namespace's containers (``Created`` ones alone), by ``ps``."""
        return {
            str(row.get("Names") or "")
            for row in self.ps(None)
            if not only_created or str(row.get("Status") or "").lower().startswith("created")
        }

    def pycri_rows(self) -> list[dict[str, Any]]:
        """``ps`` rows of pycri's pods and containers: from the view while it is fresh."""
        rows = self.view.rows()
        if rows is None:
            return self.ps(None, [f"label={KIND_LABEL}"])
        return [row for row in rows if KIND_LABEL in row["Labels"]]

    def runc(self, object_id: str) -> RuncState | None:
        """runc's state of the pod's or container's task (None: it has none)."""
        return RuncState.load(self.options.runc_root, self.options.namespace, object_id)
