"""Kubernetes resource quantities: ``500m`` CPU, ``128Mi`` memory."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["parse_cpu_millis", "parse_quantity"]

_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(value: object) -> Decimal:
    """The quantity as a number (``128Mi`` -> 134217728); ValueError if malformed."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a quantity")
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if match is None or match[2] not in _SUFFIXES:
        raise ValueError(f"{text!r} is not a quantity (examples: 500m, 2, 128Mi, 1G)")
    try:
        number = Decimal(match[1])
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a quantity") from None
    if number < 0:
        raise ValueError(f"{text!r} must not be negative")
    return number * _SUFFIXES[match[2]]


def parse_cpu_millis(value: object) -> int:
    """CPU in millicores, rounded up as the API server does (``0.1`` -> 100)."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))
