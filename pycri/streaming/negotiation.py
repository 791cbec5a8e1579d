"""Subprotocol negotiation: the kubelet's choice rule, and names ``websockets`` refuses.

The kubelet picks the client's most preferred protocol that it supports
(both for ``X-Stream-Protocol-Version`` and ``Sec-WebSocket-Protocol``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from websockets.http11 import Request as HandshakeRequest
from websockets.http11 import Response as HandshakeResponse
from websockets.sync.server import ServerConnection

__all__ = ["SubprotocolNames", "pick"]


class SubprotocolNames:
    """Lets ``websockets`` negotiate subprotocols that are not HTTP tokens.

    ``SPDY/3.1+portforward.k8s.io`` (client-go's tunnel) contains ``/``,
    which RFC 6455 forbids and ``websockets`` rejects; the request header is
    rewritten to token aliases before negotiation and the answer rewritten
    back, so the client sees exactly the name it offered.
    """

    def __init__(self, supported: Sequence[str]) -> None:
        self._original: dict[str, str] = {}
        self.tokens = [self._token(name) for name in supported]

    def _token(self, name: str) -> str:
        token = re.sub(r"[^A-Za-z0-9.!#$%&'*^_`|~-]", "_", name)
        self._original[token] = name
        return token

    def original(self, token: str | None) -> str | None:
        return self._original.get(token, token) if token else None

    def originals(self, tokens: Sequence[str]) -> list[str]:
        return [self._original.get(token, token) for token in tokens]

    def request_to_tokens(self, connection: ServerConnection, request: HandshakeRequest) -> None:
        offered = [
            item.strip()
            for value in request.headers.get_all("Sec-WebSocket-Protocol")
            for item in value.split(",")
            if item.strip()
        ]
        if offered:
            del request.headers["Sec-WebSocket-Protocol"]
            request.headers["Sec-WebSocket-Protocol"] = ", ".join(map(self._token, offered))

    def response_to_original(
        self, connection: ServerConnection, request: HandshakeRequest, response: HandshakeResponse
    ) -> None:
        chosen = response.headers.get("Sec-WebSocket-Protocol")
        if chosen in self._original:
            del response.headers["Sec-WebSocket-Protocol"]
            response.headers["Sec-WebSocket-Protocol"] = self._original[chosen]


def pick(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The client's most preferred protocol that we support (the kubelet's rule)."""
    return next((p for p in offered if p in supported), None)
