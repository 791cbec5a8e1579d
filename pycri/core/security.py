"""The CRI's security-profile rules, resolved once for every shim.

A container's seccomp and AppArmor profiles come from two places: the
``seccomp``/``apparmor`` fields (``SecurityProfile``) and the deprecated
``seccomp_profile_path``/``apparmor_profile`` strings. The field wins when
set. Without either, the CRI says seccomp is unconfined (the kubelet always
sends the profile it wants) while AppArmor gets the runtime's default
profile, which is what containerd's CRI does. Shims render the result into
their engine's options; they never read the two sources themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pycri.api import api_pb2 as cri
from pycri.errors import InvalidArgumentError

__all__ = ["Confinement", "Profile", "apparmor_profile", "seccomp_profile"]

_LOCALHOST = "localhost/"


class Confinement(Enum):
    UNCONFINED = "unconfined"
    RUNTIME_DEFAULT = "runtime/default"
    #: a profile named by the request: a file's path (seccomp) or a loaded name (AppArmor)
    LOCALHOST = "localhost"


@dataclass(frozen=True)
class Profile:
    confinement: Confinement
    #: the localhost profile's path or name; empty otherwise
    ref: str = ""


def seccomp_profile(field: cri.SecurityProfile | None, legacy: str) -> Profile:
    """The seccomp profile asked for; nil means unconfined."""
    return _resolve("seccomp", field, legacy, unset=Confinement.UNCONFINED)


def apparmor_profile(field: cri.SecurityProfile | None, legacy: str) -> Profile:
    """The AppArmor profile asked for; nil means the runtime's default."""
    return _resolve("apparmor", field, legacy, unset=Confinement.RUNTIME_DEFAULT)


def _resolve(
    kind: str, field: cri.SecurityProfile | None, legacy: str, *, unset: Confinement
) -> Profile:
    if field is not None:
        if field.profile_type == cri.SecurityProfile.Unconfined:
            return Profile(Confinement.UNCONFINED)
        if field.profile_type == cri.SecurityProfile.Localhost:
            if not field.localhost_ref:
                raise InvalidArgumentError(f"{kind}: a Localhost profile needs localhost_ref")
            return Profile(Confinement.LOCALHOST, field.localhost_ref)
        return Profile(Confinement.RUNTIME_DEFAULT)
    if not legacy:
        return Profile(unset)
    if legacy == "unconfined":
        return Profile(Confinement.UNCONFINED)
    if legacy in ("runtime/default", "docker/default"):
        return Profile(Confinement.RUNTIME_DEFAULT)
    if legacy.startswith(_LOCALHOST) and len(legacy) > len(_LOCALHOST):
        return Profile(Confinement.LOCALHOST, legacy.removeprefix(_LOCALHOST))
    raise InvalidArgumentError(
        f"{kind} profile {legacy!r} is not one of runtime/default, unconfined, localhost/<ref>"
    )
