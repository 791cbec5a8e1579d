"""List responses assembled from their entries' serialised bytes.

On the wire, a repeated message field is each entry's ``tag, length,
bytes`` one after another, so a response whose only field is the list
(``ListContainersResponse``, ``ListPodSandboxResponse``) is the
concatenation of its entries, each serialised on its own. That skips
building the response message, which copies every entry into it.

When the shim promises ``Shim.stable_list_entries`` (an unchanged entry
is the very message instance it returned before, and a changed one a new
instance: it never mutates a message once handed out), the bytes of each
entry are also kept, keyed by the instance's identity, and the last few
responses with the entries they list. A kept instance cannot be freed,
so its identity cannot name another message while the memo holds it.
The shim's own record decides what is current; the memo only saves
serialising what the shim says has not changed. Without the promise
(engines whose lists are rebuilt on each call), entries are serialised
on every call and nothing is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = ["ListEncoder", "varint"]

#: the last responses kept per encoder, for lists of the same entries again
RESPONSES_KEPT = 4
#: entries kept beyond twice the last complete list, before dropping those not listed
SLACK = 256


def varint(value: int) -> bytes:
    """``value`` (non-negative) as a protobuf base-128 varint."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class ListEncoder:
    """Serialises ``response_type`` with ``entries`` as its repeated message ``field``.

    Thread safe: concurrent calls may at worst serialise an entry twice.
    """

    def __init__(self, response_type: type[Message], field: str) -> None:
        descriptor = response_type.DESCRIPTOR
        fd = descriptor.fields_by_name[field]
        others = [f.name for f in descriptor.fields if f.name != field]
        if fd.type != FieldDescriptor.TYPE_MESSAGE or not fd.is_repeated or others:
            raise ValueError(
                f"{descriptor.full_name}.{field} must be the only field, a repeated message"
            )
        self._tag = varint(fd.number << 3 | 2)  # wire type 2: length-delimited
        #: id(entry) -> (entry, its field bytes); the entry is kept so its id stays its own
        self._entries: dict[int, tuple[Message, bytes]] = {}
        #: (the entries, the response listing them), the most recent first
        self._responses: list[tuple[list[Message], bytes]] = []
        self._complete = 0

    def _field(self, entry: Message) -> bytes:
        data = entry.SerializeToString()
        return self._tag + varint(len(data)) + data

    def encode(self, entries: Sequence[Message], *, memoise: bool, complete: bool) -> bytes:
        """The serialised response listing ``entries`` in order.

        ``memoise`` when the shim promises stable list entries; ``complete``
        when ``entries`` is every entry the shim has (no filter), which lets
        the memo drop what is no longer listed.
        """
        if not memoise:
            return b"".join([self._field(entry) for entry in entries])
        listed = list(entries)
        for kept, response in self._responses:
            # element by element, identical instances compare equal without a look inside
            # (and equal messages, were they not identical, would parse back alike)
            if kept == listed:
                return response
        memo = self._entries
        parts = []
        for entry in entries:
            hit = memo.get(id(entry))
            if hit is None or hit[0] is not entry:
                hit = (entry, self._field(entry))
                memo[id(entry)] = hit
            parts.append(hit[1])
        response = b"".join(parts)
        self._responses = [(listed, response), *self._responses[: RESPONSES_KEPT - 1]]
        if complete:
            self._complete = len(entries)
            if len(memo) > 2 * len(entries) + SLACK:
                self._sweep(entries)
        elif len(memo) > 4 * (self._complete + SLACK):
            self._entries = {}  # filtered lists only, of an ever changing shim
        return response

    def _sweep(self, listed: Sequence[Message]) -> None:
        """Keep only the entries of the complete list just served."""
        memo = self._entries
        kept = {}
        for entry in listed:
            hit = memo.get(id(entry))
            if hit is not None and hit[0] is entry:
                kept[id(entry)] = hit
        self._entries = kept
