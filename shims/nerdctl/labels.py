"""CRI labels and annotations in containerd labels, whatever their size.

containerd refuses a label whose key and value together exceed 4096 bytes,
while Kubernetes allows 256 KiB of annotations. An oversized entry is
therefore split: ``io.pycri.big.<h>`` holds its key and
``io.pycri.big.<h>.<n>`` its value in pieces, and :func:`join` puts it back
together before :func:`pycri.core.engine.decode_labels` sees the labels.
Only CRI labels keep their plain key (so ``nerdctl ps --filter label=``
finds them); which keys are CRI labels is recorded in one more label, so
labels nerdctl or images add are never mistaken for the pod's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from pycri.core.engine import PYCRI_PREFIX, EngineLabels, decode_labels
from pycri.errors import InvalidArgumentError

__all__ = ["LABEL_KEYS", "MAX_LABEL_BYTES", "decode", "join", "split"]

#: containerd's limit on len(key) + len(value) of one label
MAX_LABEL_BYTES = 4096
_PIECE_BYTES = 3072
_BIG = PYCRI_PREFIX + "big."
#: extra label (``io.pycri.label-keys``) listing the CRI label keys
LABEL_KEYS = "label-keys"


def _size(key: str, value: str) -> int:
    return len(key.encode()) + len(value.encode())


def _pieces(value: str) -> list[str]:
    """Cut ``value`` into pieces of at most _PIECE_BYTES, on character boundaries."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in value:
        width = len(char.encode())
        if size + width > _PIECE_BYTES:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    pieces.append("".join(current))
    return pieces


def split(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels containerd accepts: oversized entries become numbered pieces."""
    out: dict[str, str] = {}
    for key, value in labels.items():
        if _size(key, value) <= MAX_LABEL_BYTES:
            out[key] = value
            continue
        if len(key.encode()) > _PIECE_BYTES:
            raise InvalidArgumentError(f"label or annotation key {key[:40]!r}... is too long")
        tag = _BIG + hashlib.sha256(key.encode()).hexdigest()[:16]
        out[tag] = key
        for index, piece in enumerate(_pieces(value)):
            out[f"{tag}.{index}"] = piece
    return out


def join(labels: Mapping[str, str]) -> dict[str, str]:
    """The inverse of :func:`split`."""
    out: dict[str, str] = {}
    pieces: dict[str, dict[int, str]] = {}
    keys: dict[str, str] = {}
    for key, value in labels.items():
        if not key.startswith(_BIG):
            out[key] = value
            continue
        tag, dot, index = key[len(_BIG) :].partition(".")
        if dot and index.isdigit():
            pieces.setdefault(tag, {})[int(index)] = value
        else:
            keys[tag] = value
    for tag, key in keys.items():
        parts = pieces.get(tag, {})
        out[key] = "".join(parts[i] for i in sorted(parts))
    return out


def decode(engine_labels: Mapping[str, str] | None) -> EngineLabels:
    """decode_labels over joined labels, keeping only the CRI labels as labels."""
    decoded = decode_labels(join(engine_labels or {}))
    listed = decoded.extra.get(LABEL_KEYS)
    if listed is not None:
        wanted = set(json.loads(listed))
        decoded.labels = {k: v for k, v in decoded.labels.items() if k in wanted}
    return decoded
