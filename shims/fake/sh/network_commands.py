"""Network commands: servers that listen on the pod's ports, and ``nc``/``wget`` clients.

* ``nginx`` (port 80), ``httpd-foreground`` / Apache-style ``httpd`` (80),
  ``redis-server`` (6379, ``--port N``) and the other daemons listen on
  their usual port while they run;
* busybox ``httpd [-f] [-v] [-p [IP:]PORT] [-h DIR]`` serves the
  container's files (it stays in the foreground even without ``-f``: the
  fake has no background jobs);
* ``nc -l [-k] [-p] PORT`` accepts a connection and copies it to stdout
  and stdin to it; ``nc HOST PORT`` connects (only to the pod itself:
  ``localhost``, its IP or hostname);
* ``wget [-q] [-O FILE|-] http://HOST[:PORT]/PATH``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit

from pycri.errors import UnavailableError
from pycri_shims.fake.network import PortInUseError
from pycri_shims.fake.sh.context import IO
from pycri_shims.fake.sh.interpreter import Command, Shell
from pycri_shims.fake.sh.programs import serve_until_stopped
from pycri_shims.fake.sh.servers import (
    Handler,
    apache_site,
    file_site,
    http_handler,
    nginx_site,
    read_head,
    redis_handler,
    serving,
)
from pycri_shims.fake.stdio import Stdin

__all__ = [
    "QUIET_PORTS",
    "apache_command",
    "httpd_command",
    "nc_command",
    "nginx_command",
    "quiet_daemon",
    "redis_command",
    "wget_command",
]

POLL = 0.1
#: what each daemon prints when it starts (after it listens), like the real ones
STARTUP_LINES: dict[str, tuple[str, ...]] = {
    "nginx": ("nginx: [notice] start worker processes (pycri fake)",),
    "httpd-foreground": ("httpd: resuming normal operations (pycri fake)",),
    "httpd": ("httpd: resuming normal operations (pycri fake)",),
    "redis-server": ("* Ready to accept connections tcp (pycri fake)",),
    "postgres": ("LOG:  database system is ready to accept connections (pycri fake)",),
    "mysqld": ("mysqld: ready for connections (pycri fake)",),
    "memcached": (),
    "mongod": ("Waiting for connections (pycri fake)",),
    "etcd": ("ready to serve client requests (pycri fake)",),
    "coredns": ("CoreDNS-fake", "linux/amd64, go, pycri"),
}
_VERSION_FLAGS = ("-v", "-V", "--version", "-t")
#: daemons without a protocol of their own: they accept and hold connections
QUIET_PORTS = {
    "postgres": 5432,
    "mysqld": 3306,
    "memcached": 11211,
    "mongod": 27017,
    "etcd": 2379,
    "coredns": 53,
}


def _hold(sock: socket.socket) -> None:
    sock.settimeout(3600)
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass


def _run_daemon(sh: Shell, name: str, io: IO, services: list[tuple[int, Handler]]) -> int:
    """Listen on ``services``' ports, print the start-up lines, serve until stopped."""
    try:
        with serving(sh.ctx.net, services):
            for line in STARTUP_LINES.get(name, ()):
                io.out(line.encode() + b"\n")
            return serve_until_stopped(sh)
    except PortInUseError:
        ports = ", ".join(str(port) for port, _ in services)
        io.err(f"{name}: bind() to 0.0.0.0:{ports} failed (98: Address already in use)\n".encode())
        return 1


def _version(name: str, args: list[str], io: IO) -> bool:
    if any(a in _VERSION_FLAGS for a in args):
        io.err(f"{name} version: pycri-fake\n".encode())
        return True
    return False


def nginx_command(sh: Shell, args: list[str], io: IO) -> int:
    """nginx [-v]: serve the welcome page (or /usr/share/nginx/html) on port 80."""
    if _version("nginx", args, io):
        return 0
    handler = http_handler(nginx_site(sh.ctx.fs), "nginx/1.25 (pycri fake)", io.out)
    return _run_daemon(sh, "nginx", io, [(80, handler)])


def apache_command(sh: Shell, args: list[str], io: IO) -> int:
    """httpd-foreground [-v]: Apache, ``It works!`` on port 80."""
    if _version("httpd", args, io):
        return 0
    handler = http_handler(apache_site, "Apache/2.4 (pycri fake)")
    return _run_daemon(sh, "httpd-foreground", io, [(80, handler)])


def httpd_command(sh: Shell, args: list[str], io: IO) -> int:
    """httpd [-f] [-v] [-p [IP:]PORT] [-h DIR]: busybox httpd, else Apache's."""
    if not any(a in ("-f", "-p", "-h") or a.startswith(("-p", "-h")) for a in args):
        return apache_command(sh, args, io)  # Apache's httpd (-DFOREGROUND)
    port, home, verbose = 80, sh.cwd, False
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("-p", "-h") and index + 1 < len(args):
            value = args[index + 1]
            index += 1
        elif arg.startswith(("-p", "-h")) and len(arg) > 2:
            value = arg[2:]
        else:
            verbose = verbose or arg == "-v"
            index += 1
            continue
        try:
            if arg.startswith("-p"):
                port = int(value.rsplit(":", 1)[-1])
            else:
                home = sh.resolve(value)
        except ValueError:
            io.err(f"httpd: invalid number '{value}'\n".encode())
            return 1
        index += 1
    handler = http_handler(
        file_site(sh.ctx.fs, home), "busybox-httpd (pycri fake)", io.err if verbose else None
    )
    return _run_daemon(sh, "httpd", io, [(port, handler)])


def redis_command(sh: Shell, args: list[str], io: IO) -> int:
    """redis-server [--port N]: answer PING with PONG (port 6379)."""
    if _version("redis-server", args, io):
        return 0
    port = 6379
    if "--port" in args[:-1]:
        port = int(args[args.index("--port") + 1])
    return _run_daemon(sh, "redis-server", io, [(port, redis_handler)])


def quiet_daemon(name: str) -> Command:
    """The daemon ``name`` of :data:`QUIET_PORTS`: it accepts and holds connections."""

    def run(sh: Shell, args: list[str], io: IO) -> int:
        if _version(name, args, io):
            return 0
        return _run_daemon(sh, name, io, [(QUIET_PORTS[name], _hold)])

    run.__doc__ = f"{name} [-v]: hold the connections to port {QUIET_PORTS[name]}."
    return run


# -- clients ----------------------------------------------------------------------------


def _local(sh: Shell, host: str) -> bool:
    """Only the pod itself is reachable: the fake has no network between pods."""
    local = ("localhost", "127.0.0.1", "::1", "0.0.0.0", sh.ctx.ip, sh.ctx.hostname)  # noqa: S104
    return host in local


def _parse_nc(args: list[str]) -> tuple[set[str], dict[str, str], list[str]]:
    flags: set[str] = set()
    values: dict[str, str] = {}
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            continue
        for pos, char in enumerate(arg[1:], start=1):
            if char in "pwe":
                value = arg[pos + 1 :]
                if not value and index < len(args):
                    value, index = args[index], index + 1
                values[char] = value
                break
            flags.add(char)
    return flags, values, rest


class _Stopped(Exception):
    """The connection ended: stop sending stdin."""


def _talk(sh: Shell, conn: socket.socket, io: IO) -> None:
    """Copy stdin to ``conn`` and ``conn`` to stdout until the peer closes."""
    stdin = io.stdin
    stop = threading.Event()

    def check() -> None:
        if stop.is_set():
            raise _Stopped

    def send() -> None:
        try:
            if isinstance(stdin, Stdin):
                while chunk := stdin.read(check):
                    conn.sendall(chunk)
            elif stdin:
                conn.sendall(stdin)
            elif stdin is None:
                return  # an open stdin that never sends: keep the connection open
            conn.shutdown(socket.SHUT_WR)
        except (OSError, _Stopped):
            pass

    sender = threading.Thread(target=send, name="pycri-fake-nc", daemon=True)
    sender.start()
    conn.settimeout(POLL)
    try:
        while True:
            sh.control.check()
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            io.out(data)
    except OSError:
        pass
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        sender.join(1)
        conn.close()


def nc_command(sh: Shell, args: list[str], io: IO) -> int:
    """nc [-l] [-k] [-p PORT] [HOST PORT]: copy stdin/stdout to a TCP connection."""
    flags, values, rest = _parse_nc(args)
    if "e" in values:
        io.err(b"nc: -e is not supported by the pycri fake\n")
        return 1
    net = sh.ctx.net
    if "l" in flags:
        port_text = values.get("p") or (rest[-1] if rest else "")
        if not port_text.isdigit() or net is None:
            io.err(b"nc: listen mode needs a port (-l -p PORT)\n")
            return 1
        try:
            listener = net.listen(int(port_text))
        except PortInUseError:
            io.err(b"nc: bind: Address already in use\n")
            return 1
        try:
            while True:
                conn = None
                while conn is None:
                    sh.control.check()
                    conn = listener.accept(POLL)
                _talk(sh, conn, io)
                if "k" not in flags:
                    return 0
        finally:
            listener.close()
    if len(rest) != 2 or not rest[1].isdigit():
        io.err(b"usage: nc [-l] [-k] [-p PORT] [HOST PORT]\n")
        return 1
    host, port = rest[0], int(rest[1])
    if net is None or not _local(sh, host):
        io.err(f"nc: bad address '{host}'\n".encode())
        return 1
    try:
        conn = net.connect(port)
    except UnavailableError:
        io.err(f"nc: can't connect to remote host ({host}): Connection refused\n".encode())
        return 1
    _talk(sh, conn, io)
    return 0


def wget_command(sh: Shell, args: list[str], io: IO) -> int:
    """wget [-q] [-O FILE|-] http://HOST[:PORT]/PATH: fetch from the pod itself."""
    quiet = any(a.startswith("-") and "q" in a and not a.startswith("--") for a in args)
    output: str | None = None
    urls: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("-") and "O" in arg:
            output = arg.split("O", 1)[1] or (args[index + 1] if index + 1 < len(args) else "-")
            index += 1 if arg.split("O", 1)[1] else 2
            continue
        if not arg.startswith("-"):
            urls.append(arg)
        index += 1
    if len(urls) != 1 or not urls[0].startswith("http://"):
        io.err(b"wget: only http://HOST[:PORT]/PATH URLs are supported by the pycri fake\n")
        return 1
    url = urlsplit(urls[0])
    host, port = url.hostname or "", url.port or 80
    if sh.ctx.net is None or not _local(sh, host):
        io.err(f"wget: bad address '{host}'\n".encode())
        return 1
    if not quiet:
        io.err(f"Connecting to {host}:{port} (127.0.0.1:{port})\n".encode())
    try:
        conn = sh.ctx.net.connect(port)
    except UnavailableError:
        io.err(b"wget: can't connect to remote host (127.0.0.1): Connection refused\n")
        return 1
    with conn:
        request = f"GET {url.path or '/'} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Wget\r\n"
        conn.sendall((request + "Connection: close\r\n\r\n").encode())
        head = read_head(conn) or b""
        body = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
        conn.settimeout(10)
        while chunk := conn.recv(65536):
            body += chunk
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 2" not in status_line[:13]:
        io.err(f"wget: server returned error: {status_line}\n".encode())
        return 1
    name = output or (url.path.rsplit("/", 1)[-1] or "index.html")
    if name == "-":
        io.out(body)
        return 0
    sh.ctx.fs.write(sh.resolve(name), body)
    if not quiet:
        io.err(f"saving to '{name}'\n'{name}' saved\n".encode())
    return 0
