"""The CRI's rules for recursive read-only mounts (KEP-3857), once for every shim.

``Mount.recursive_read_only`` makes every submount under the host path
read-only too, which a plain read-only bind does not. The kubelet only
asks for it when the handler's ``RuntimeHandlerFeatures`` says so, and the
CRI allows it only on a read-only mount with private propagation (a
submount arriving later through propagation could not be made read-only).
Core refuses the rest with INVALID_ARGUMENT before any engine sees them.
"""

from __future__ import annotations

from collections.abc import Iterable

from pycri.api import api_pb2 as cri
from pycri.errors import InvalidArgumentError

__all__ = ["check_recursive_read_only", "wants_recursive_read_only"]


def wants_recursive_read_only(mounts: Iterable[cri.Mount]) -> bool:
    return any(m.recursive_read_only for m in mounts)


def check_recursive_read_only(
    mounts: Iterable[cri.Mount],
    features: cri.RuntimeHandlerFeatures,
    handler: str,
    field: str = "config",
) -> None:
    """InvalidArgumentError for a recursive read-only mount the CRI or the handler refuses."""
    for index, mount in enumerate(mounts):
        if not mount.recursive_read_only:
            continue
        where = f"{field}.mounts[{index}] (host_path {mount.host_path!r})"
        if not mount.readonly:
            raise InvalidArgumentError(
                f"{where}: a recursive read-only mount must also be read-only (readonly: true)"
            )
        if mount.propagation != cri.PROPAGATION_PRIVATE:
            raise InvalidArgumentError(
                f"{where}: a recursive read-only mount needs private propagation, got "
                f"{cri.MountPropagation.Name(mount.propagation)}"
            )
        if not features.recursive_read_only_mounts:
            raise InvalidArgumentError(
                f"{where}: runtime handler {handler!r} does not support recursive read-only "
                "mounts (see its RuntimeHandlerFeatures in Status)"
            )
