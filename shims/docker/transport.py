"""Plain Docker API requests over the unix socket, without requests' per-call machinery.

docker-py sends every call through a ``requests.Session``: preparing the
request (URL parsing, cookie and hook merging), urllib3's pool and response
wrapping cost about 0.6 ms a call here, more than dockerd takes to answer an
inspect (0.48 ms with ``http.client`` against 1.07 ms through docker-py, on a
quiet machine). The shim makes a dozen such calls per pod lifecycle, so
:func:`install` answers docker-py's plain requests (a complete body, no
streaming) over kept-alive ``http.client`` connections instead, and hands
back a real ``requests.Response``, so docker-py reads results and raises
its ``APIError``\\s exactly as before. Anything else (streams, hijacked
sockets, uploads from a file) goes the way it always went.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import urllib.parse
from typing import Any

import requests
import requests.exceptions
from requests.models import RequestEncodingMixin
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

__all__ = ["UnixTransport", "install"]

#: idle connections kept for reuse; more in flight at once are made and then closed
KEEP_IDLE = 16
#: what http.client raises when a kept connection turned out to be closed by dockerd
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
#: methods dockerd may be asked twice without harm
_REPEATABLE = {"GET", "HEAD", "DELETE"}
#: the keyword arguments of a request this transport sends itself
_PLAIN_KWARGS = {"params", "data", "json", "headers", "timeout", "stream", "allow_redirects"}
#: requests' default headers that do not apply here
_NOT_SENT = {"accept-encoding", "connection"}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _alive(conn: _UnixConnection) -> bool:
    """Whether an idle kept connection is still open: dockerd may have closed it, and an
    idle connection with anything to read (its end, stray bytes) is no use either."""
    sock = conn.sock
    if sock is None:
        return False
    poller = select.poll()  # not select(): a busy server's descriptors pass 1024
    poller.register(sock, select.POLLIN)
    try:
        return not poller.poll(0)
    except OSError:
        return False


class UnixTransport:
    """Kept-alive HTTP/1.1 connections to one unix socket, shared by all threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._idle: list[_UnixConnection] = []
        self._closed = False

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """One request and its whole answer; a kept connection found closed is retried once."""
        conn, reused = self._take(timeout)
        try:
            try:
                sent = False
                conn.request(method, target, body=body, headers=headers)
                sent = True
                response = conn.getresponse()
            except _STALE:
                conn.close()
                # closed while idle: asked again where dockerd cannot have acted on it
                # (nothing sent, or a request that may be repeated), as Go's client does
                if not reused or (sent and method not in _REPEATABLE):
                    raise
                conn = _UnixConnection(self.path, timeout)
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return response, data

    def _take(self, timeout: float | None) -> tuple[_UnixConnection, bool]:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return _UnixConnection(self.path, timeout), False
            if _alive(conn):
                conn.timeout = timeout
                assert conn.sock is not None
                conn.sock.settimeout(timeout)
                return conn, True
            conn.close()

    def _give_back(self, conn: _UnixConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < KEEP_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _NotPlain(Exception):
    """A request this transport leaves to requests."""


def _body(data: Any, json_body: Any, headers: dict[str, str]) -> bytes | None:
    """The request body as bytes (_NotPlain: a file, a generator, a form)."""
    if json_body is not None:
        if data is not None:
            raise _NotPlain
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(json_body).encode()
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise _NotPlain


def install(api: Any, path: str) -> UnixTransport:
    """Answer ``api``'s (a ``docker.APIClient`` on unix socket ``path``) plain requests."""
    transport = UnixTransport(path)
    fallback = api.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout")
        # Session.get adds allow_redirects; dockerd never redirects
        plain = not args and not kwargs.get("stream") and set(kwargs) <= _PLAIN_KWARGS
        if not plain or isinstance(timeout, tuple):
            return fallback(method, url, *args, **kwargs)
        headers = _headers(api.headers, kwargs.get("headers"))
        try:
            body = _body(kwargs.get("data"), kwargs.get("json"), headers)
        except _NotPlain:
            return fallback(method, url, *args, **kwargs)
        split = urllib.parse.urlsplit(url)
        target = split.path or "/"
        query = "&".join(q for q in (split.query, _query(kwargs.get("params"))) if q)
        if query:
            target = f"{target}?{query}"
        if body is not None:
            headers["Content-Length"] = str(len(body))
        try:
            answer, content = transport.send(method.upper(), target, body, headers, timeout)
        except TimeoutError as err:
            raise requests.exceptions.ReadTimeout(err) from err
        except (OSError, http.client.HTTPException) as err:
            raise requests.exceptions.ConnectionError(err) from err
        return _response(answer, content, url)

    api.request = request
    return transport


def _headers(session: Any, extra: Any) -> dict[str, str]:
    """docker-py's session headers (User-Agent) and the call's own; no compression asked
    for, since http.client does not undo it."""
    merged = {**session, **(extra or {})}
    return {str(k): str(v) for k, v in merged.items() if v and k.lower() not in _NOT_SENT}


def _query(params: Any) -> str:
    if not params:
        return ""
    encoded = RequestEncodingMixin._encode_params(params)
    return encoded.decode() if isinstance(encoded, bytes) else str(encoded)


def _response(answer: http.client.HTTPResponse, content: bytes, url: str) -> requests.Response:
    response = requests.Response()
    response.status_code = answer.status
    response.reason = answer.reason
    response.headers = CaseInsensitiveDict(answer.getheaders())
    response.encoding = get_encoding_from_headers(response.headers)
    response.url = url
    response._content = content
    response._content_consumed = True
    return response
