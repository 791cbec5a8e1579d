"""What simulated servers answer on their ports: enough HTTP for curl, and PONG.

``nginx`` serves its welcome page (or files under /usr/share/nginx/html),
Apache's ``httpd-foreground`` says "It works!", busybox ``httpd -h DIR``
serves the container's files, ``redis-server`` answers PING. Each accepted
connection is handled in a thread, one request per connection
(``Connection: close``), as HTTP/1.0 clients expect.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import socket
import threading
import time
from collections.abc import Callable, Iterator

from pycri_shims.fake.network import FakeNetwork, Listener
from pycri_shims.fake.sh.filesystem import FakeFS

__all__ = ["Handler", "apache_site", "file_site", "http_handler", "nginx_site", "redis_handler"]

log = logging.getLogger(__name__)

Handler = Callable[[socket.socket], None]
#: path -> (status, body, content type)
Site = Callable[[str], tuple[int, bytes, str]]
Writer = Callable[[bytes], None]

READ_TIMEOUT = 10.0
MAX_REQUEST = 16 * 1024
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}

NGINX_WELCOME = b"""<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working (simulated by the pycri fake runtime).</p>
</body>
</html>
"""
APACHE_WELCOME = b"<html><body><h1>It works!</h1></body></html>\n"
BUSYBOX_404 = (
    b"<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD>\n"
    b"<BODY><H1>404 Not Found</H1>\nThe requested URL was not found\n</BODY></HTML>\n"
)
NGINX_404 = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _content_type(path: str) -> str:
    ext = posixpath.splitext(path)[1]
    types = {
        ".html": "text/html",
        ".htm": "text/html",
        ".txt": "text/plain",
        ".json": "application/json",
    }
    return types.get(ext, "application/octet-stream")


def file_site(fs: FakeFS, root: str, not_found: bytes = BUSYBOX_404) -> Site:
    """Files of the container's filesystem under ``root``; ``index.html`` for directories."""

    def serve(path: str) -> tuple[int, bytes, str]:
        target = posixpath.normpath(posixpath.join(root, path.lstrip("/")))
        if not (target + "/").startswith(root.rstrip("/") + "/"):
            return 404, not_found, "text/html"  # no escaping the document root
        if fs.is_dir(target) or path.endswith("/"):
            target = posixpath.join(target, "index.html")
        data = fs.read(target)
        if data is None:
            return 404, not_found, "text/html"
        return 200, data, _content_type(target)

    return serve


def nginx_site(fs: FakeFS) -> Site:
    files = file_site(fs, "/usr/share/nginx/html", NGINX_404)

    def serve(path: str) -> tuple[int, bytes, str]:
        status, body, kind = files(path)
        if status == 404 and path in ("/", "/index.html"):
            return 200, NGINX_WELCOME, "text/html"
        return status, body, kind

    return serve


def apache_site(path: str) -> tuple[int, bytes, str]:
    if path in ("/", "/index.html"):
        return 200, APACHE_WELCOME, "text/html"
    return 404, b"<html><body><h1>Not Found</h1></body></html>\n", "text/html"


def read_head(sock: socket.socket) -> bytes | None:
    """An HTTP request head (or any first line-terminated message); None if there is none."""
    sock.settimeout(READ_TIMEOUT)
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None
        if not chunk:
            return data or None
        data += chunk
        if len(data) > MAX_REQUEST:
            return None
    return data


def http_handler(site: Site, server: str, access_log: Writer | None = None) -> Handler:
    """Answer one HTTP request per connection from ``site``."""

    def handle(sock: socket.socket) -> None:
        head = read_head(sock)
        if head is None:
            return
        first = head.split(b"\n", 1)[0].decode("latin-1").strip()
        parts = first.split()
        agent = next(
            (
                line.split(":", 1)[1].strip()
                for line in head.decode("latin-1").splitlines()
                if line.lower().startswith("user-agent:")
            ),
            "-",
        )
        if len(parts) != 3:
            status, body, kind = 400, b"bad request\n", "text/plain"
        elif parts[0] not in ("GET", "HEAD"):
            status, body, kind = 405, b"method not allowed\n", "text/plain"
        else:
            status, body, kind = site(parts[1].split("?", 1)[0])
        reason = REASONS.get(status, "")
        headers = (
            f"HTTP/1.1 {status} {reason}\r\nServer: {server}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            sock.sendall(headers.encode() + (b"" if parts[:1] == ["HEAD"] else body))
        if access_log is not None:
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
            line = f'127.0.0.1 - - [{stamp}] "{first}" {status} {len(body)} "-" "{agent}" "-"\n'
            with contextlib.suppress(OSError):
                access_log(line.encode())

    return handle


def redis_handler(sock: socket.socket) -> None:
    """Answer each PING (inline or RESP) with +PONG until the client leaves."""
    sock.settimeout(READ_TIMEOUT * 30)
    pending = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except OSError:
            return
        if not chunk:
            return
        pending += chunk
        pings = pending.upper().count(b"PING")
        if pings:
            pending = b""
            with contextlib.suppress(OSError):
                sock.sendall(b"+PONG\r\n" * pings)


class _Service:
    """One listening port: accepts in a thread, one thread per connection."""

    def __init__(self, listener: Listener, handler: Handler) -> None:
        self.listener = listener
        self.handler = handler
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="pycri-fake-listen", daemon=True
        )
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while (conn := self.listener.accept()) is not None:
            with self._lock:
                self._conns.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                thread = threading.Thread(
                    target=self._serve,
                    args=(conn,),
                    name=f"pycri-fake-port-{self.listener.port}",
                    daemon=True,
                )
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except Exception:
            log.exception("simulated server on port %d failed", self.listener.port)
        finally:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def close(self) -> None:
        """The server process is gone: its port and its connections go with it."""
        self.listener.close()
        self._acceptor.join(1)
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(1)


@contextlib.contextmanager
def serving(net: FakeNetwork | None, services: list[tuple[int, Handler]]) -> Iterator[None]:
    """Listen on each port with its handler while the block runs.

    Raises :class:`~pycri_shims.fake.network.PortInUseError` (nothing is left
    listening) when a port is taken.
    """
    running: list[_Service] = []
    try:
        for port, handler in services if net is not None else []:
            assert net is not None
            running.append(_Service(net.listen(port), handler))
        yield
    finally:
        for service in running:
            service.close()
