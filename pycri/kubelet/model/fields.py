"""Reading one manifest document: typed field access that names the path of every problem.

A :class:`Fields` collects errors (the manifest is refused) and warnings
(a field this kubelet does not act on), each starting with the field's
path as Kubernetes writes it: ``spec.containers[1].image``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DNS_LABEL", "DNS_SUBDOMAIN", "Fields", "join"]

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@dataclass
class Fields:
    """Errors and warnings found while reading one document."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}")

    # -- shapes ----------------------------------------------------------------

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        """``value`` as a mapping ({} with an error when it is something else)."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"must be an object, not {_kind(value)}")
            return {}
        return value

    def items(self, value: Any, path: str) -> list[tuple[str, Mapping[str, Any]]]:
        """A list of objects, each with its path."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list, not {_kind(value)}")
            return []
        return [(join(path, i), self.mapping(item, join(path, i))) for i, item in enumerate(value)]

    def known(
        self,
        obj: Mapping[str, Any],
        path: str,
        supported: Iterable[str],
        unsupported: Mapping[str, str] | None = None,
        quiet: Iterable[str] = (),
    ) -> None:
        """Warn about every key we do not act on; ``quiet`` keys are output-only."""
        supported, quiet = set(supported), set(quiet)
        for key in obj:
            if key in supported or key in quiet:
                continue
            reason = (unsupported or {}).get(key, "not supported by pycri-kubelet")
            self.warn(join(path, str(key)), f"ignored: {reason}")

    # -- scalars -------------------------------------------------------------------

    def string(self, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str:
        where = join(path, key)
        value = obj.get(key)
        if value is None or value == "":
            if required:
                self.error(where, "required value")
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.error(where, f"must be a string, not {_kind(value)}")
            return ""
        if not isinstance(value, str):
            self.error(where, f"must be a string, not a number (quote it: '{value}')")
            return ""
        return value

    def integer(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        default: int,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        where = join(path, key)
        value = obj.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(where, f"must be an integer, not {_kind(value)}")
            return default
        if minimum is not None and value < minimum:
            self.error(where, f"must be at least {minimum}, not {value}")
            return default
        if maximum is not None and value > maximum:
            self.error(where, f"must be at most {maximum}, not {value}")
            return default
        return value

    def optional_int(
        self, obj: Mapping[str, Any], key: str, path: str, *, minimum: int = 0
    ) -> int | None:
        if obj.get(key) is None:
            return None
        return self.integer(obj, key, path, 0, minimum=minimum)

    def boolean(self, obj: Mapping[str, Any], key: str, path: str) -> bool:
        value = obj.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.error(join(path, key), f"must be true or false, not {_kind(value)}")
            return False
        return value

    def optional_bool(self, obj: Mapping[str, Any], key: str, path: str) -> bool | None:
        return None if obj.get(key) is None else self.boolean(obj, key, path)

    def choice(
        self, obj: Mapping[str, Any], key: str, path: str, choices: tuple[str, ...], default: str
    ) -> str:
        value = self.string(obj, key, path)
        if not value:
            return default
        if value not in choices:
            self.error(join(path, key), f"unsupported value {value!r}: one of {', '.join(choices)}")
            return default
        return value

    def strings(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        where = join(path, key)
        value = obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(where, f"must be a list of strings, not {_kind(value)}")
            return ()
        out = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.error(join(where, index), f"must be a string, not {_kind(item)}")
            else:
                out.append(item)
        return tuple(out)

    def string_map(self, obj: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
        where = join(path, key)
        value = self.mapping(obj.get(key), where)
        out = {}
        for name, item in value.items():
            if not isinstance(item, str):
                self.error(join(where, str(name)), f"must be a string, not {_kind(item)}")
            else:
                out[str(name)] = item
        return out

    # -- Kubernetes names ------------------------------------------------------------

    def dns_label(self, value: str, path: str) -> None:
        if value and (len(value) > 63 or not DNS_LABEL.match(value)):
            self.error(
                path,
                f"invalid value {value!r}: a DNS-1123 label must consist of lower case "
                "alphanumeric characters or '-', start and end with an alphanumeric "
                "character, and be at most 63 characters",
            )

    def dns_subdomain(self, value: str, path: str) -> None:
        if value and (len(value) > 253 or not DNS_SUBDOMAIN.match(value)):
            self.error(
                path,
                f"invalid value {value!r}: a lowercase RFC 1123 subdomain must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end "
                "with an alphanumeric character",
            )

    def labels(self, labels: Mapping[str, str], path: str) -> None:
        for key, value in labels.items():
            prefix, _, name = key.rpartition("/")
            if prefix:
                self.dns_subdomain(prefix, join(path, key))
            if len(name) > 63 or not _LABEL_NAME.match(name):
                self.error(join(path, key), f"invalid label key {key!r}")
            if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
                self.error(join(path, key), f"invalid label value {value!r}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
