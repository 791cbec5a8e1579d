"""Long-lived Docker HTTP streams (logs, exec output, pulls) that can be cut short.

docker-py's helpers read these streams from the raw socket and offer no way
to stop a blocked read from another thread or to bound the whole read. Here
a stream is a plain ``requests`` response read through urllib3 (so bytes
already buffered after the headers are not lost), and its socket is reached
the way docker-py's own ``CancellableStream.close`` does, to shut it down or
give each read a deadline.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import docker.errors
import requests

__all__ = [
    "STDERR",
    "STDOUT",
    "frames",
    "open_stream",
    "read_frames",
    "response_socket",
    "shutdown",
]

STDOUT = 1
STDERR = 2
_HEADER = struct.Struct(">BxxxL")


def open_stream(
    api: Any,
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    read_timeout: float | None = None,
) -> requests.Response:
    """Start a streamed request; docker.errors.APIError when the daemon refuses it.

    ``read_timeout`` bounds each read (None: wait forever, for log follows).
    """
    url = f"{api.base_url}/v{api.api_version}{path}"
    response: requests.Response = api.request(
        method,
        url,
        params=params,
        json=body,
        headers=headers,
        stream=True,
        timeout=(api.timeout, read_timeout),
    )
    if response.status_code >= 400:
        try:
            response.raise_for_status()
        except requests.HTTPError as err:
            response.close()
            raise docker.errors.create_api_error_from_http_exception(err) from err
    return response


def response_socket(response: requests.Response) -> socket.socket | None:
    """The socket under a streamed response, or None if urllib3's insides changed."""
    try:
        raw = response.raw._fp.fp.raw
    except AttributeError:
        return None
    sock = getattr(raw, "_sock", None) or getattr(raw, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def shutdown(response: requests.Response, *, close: bool = True) -> None:
    """End a stream now, even while another thread is blocked reading it (which then
    reads its end); ``close=False`` leaves closing the response to that thread."""
    sock = response_socket(response)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed
    if close:
        response.close()


def _read_exact(read: Callable[[int], bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    missing = size
    while missing:
        chunk = read(missing)
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def frames(response: requests.Response) -> Iterator[tuple[int, bytes]]:
    """(stream, payload) frames of Docker's multiplexed stdout/stderr stream."""
    return read_frames(response.raw.read)


def read_frames(read: Callable[[int], bytes]) -> Iterator[tuple[int, bytes]]:
    """The frames of a multiplexed stream read with ``read(n)`` (b"" at its end)."""
    while True:
        header = _read_exact(read, _HEADER.size)
        if len(header) < _HEADER.size:
            return
        stream, size = _HEADER.unpack(header)
        payload = _read_exact(read, size)
        if len(payload) < size:
            return
        yield stream, payload
