"""``port-forward``: local TCP ports to ports inside a pod, until interrupted.

Each accepted local connection asks PortForward for a fresh one-time URL
naming its remote port and streams over it (the kubelet's WebSocket
port-forward channels), so it works against any CRI runtime.
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import socket
import threading
from types import FrameType

import click

from pycri.api import api_pb2 as cri
from pycri.cli.attach import TRANSPORT_HELP, streaming_hint
from pycri.cli.errors import CLIError
from pycri.cli.output import echo
from pycri.cli.session import CrictlSession
from pycri.errors import CRIError, UnimplementedError
from pycri.streaming.client import StreamError, forward_connection

__all__ = ["COMMANDS", "parse_ports"]


def parse_ports(specs: tuple[str, ...]) -> list[tuple[int, int]]:
    """``[LOCAL_PORT:]REMOTE_PORT`` specs -> (local, remote); local 0 picks a free port."""
    pairs = []
    for spec in specs:
        local, sep, remote = spec.rpartition(":")
        try:
            remote_port = int(remote)
            local_port = int(local) if sep and local else remote_port
        except ValueError:
            raise click.BadParameter(f"{spec!r}: expected [LOCAL_PORT:]REMOTE_PORT") from None
        if not 0 < remote_port < 65536 or not 0 <= local_port < 65536:
            raise click.BadParameter(f"{spec!r}: ports must be between 1 and 65535")
        pairs.append((local_port, remote_port))
    return pairs


def _url(session: CrictlSession, pod_id: str, remote: int) -> str:
    request = cri.PortForwardRequest(pod_sandbox_id=pod_id, port=[remote])
    return session.rpc(session.client.port_forward, request).url


def _handle(
    session: CrictlSession, pod_id: str, conn: socket.socket, local: int, remote: int
) -> None:
    echo(f"Handling connection for {local}")
    try:
        problem = forward_connection(_url(session, pod_id, remote), conn)
    except (CRIError, StreamError) as err:
        conn.close()
        problem = str(err)
    if problem:
        echo(f"pycrictl: an error occurred forwarding {local} -> {remote}: {problem}", err=True)


@click.command("port-forward")
@click.option("--address", default="127.0.0.1", show_default=True, help="Local address to bind.")
@click.option("-r", "--transport", type=click.Choice(["spdy", "websocket"]), help=TRANSPORT_HELP)
@click.argument("pod_id", metavar="POD-ID")
@click.argument("ports", nargs=-1, required=True, metavar="[LOCAL_PORT:]REMOTE_PORT...")
@click.pass_context
def port_forward_command(
    ctx: click.Context, address: str, transport: str | None, pod_id: str, ports: tuple[str, ...]
) -> None:
    """Forward local ports to a pod, until Ctrl-C."""
    session = ctx.find_object(CrictlSession)
    assert session is not None
    pairs = parse_ports(ports)
    try:
        _url(session, pod_id, pairs[0][1])  # fail now, not at the first connection
    except UnimplementedError as err:
        raise streaming_hint(err) from None
    selector = selectors.DefaultSelector()
    listeners = []
    try:
        for local, remote in pairs:
            try:
                listener = socket.create_server((address, local))
            except OSError as err:
                raise CLIError(f"unable to listen on {address}:{local}: {err.strerror}") from None
            listeners.append(listener)
            bound = listener.getsockname()[1]
            selector.register(listener, selectors.EVENT_READ, (bound, remote))
            echo(f"Forwarding from {address}:{bound} -> {remote}")
        _serve(session, pod_id, selector)
    finally:
        for listener in listeners:
            listener.close()
        selector.close()


def _serve(session: CrictlSession, pod_id: str, selector: selectors.BaseSelector) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                listener = key.fileobj
                assert isinstance(listener, socket.socket)
                with contextlib.suppress(OSError):
                    conn, _ = listener.accept()
                    local, remote = key.data
                    threading.Thread(
                        target=_handle,
                        args=(session, pod_id, conn, local, remote),
                        name="pycrictl-port-forward",
                        daemon=True,
                    ).start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


COMMANDS = [port_forward_command]
