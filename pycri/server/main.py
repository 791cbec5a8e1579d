"""``pycri-server``: serve the CRI over a shim until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from pycri import __version__
from pycri.core.router import HandlerRouter
from pycri.core.runtime import CRIRuntime
from pycri.endpoint import default_socket_path, parse_endpoint
from pycri.registry import ShimLoadError, available_shims, load_shim
from pycri.server.server import CRIServer, EndpointInUseError, ServerTLS
from pycri.shim import Shim
from pycri.streaming.server import StreamingServer

log = logging.getLogger("pycri.server")


def _shim_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.replace("-", "_"), value


def build_shim(
    specs: list[str], options: list[tuple[str, str]], default_handler: str | None
) -> Shim:
    """One shim, or a HandlerRouter over several (``NAME[=HANDLER]`` each)."""
    handlers: dict[str, str] = {}
    for spec in specs:
        name, _, handler = spec.partition("=")
        handler = handler or name
        if handler in handlers:
            raise ValueError(f"runtime handler {handler!r} is given twice; use NAME=HANDLER")
        handlers[handler] = name
    per_handler: dict[str, dict[str, str]] = {h: {} for h in handlers}
    for key, value in options:
        target, dot, option = key.partition(".")
        if dot and target in handlers:
            per_handler[target][option] = value
        elif len(handlers) == 1:
            per_handler[next(iter(handlers))][key] = value
        else:
            raise ValueError(
                f"shim option {key!r} must name its handler (one of {sorted(handlers)}), "
                "e.g. -O docker.timeout=30"
            )
    if len(handlers) == 1:
        return load_shim(next(iter(handlers.values())), per_handler[next(iter(handlers))])
    default = default_handler or next(iter(handlers))
    if default not in handlers:
        raise ValueError(f"--default-handler {default!r} is not one of {sorted(handlers)}")
    shims: dict[str, Shim] = {}
    try:
        for handler, name in handlers.items():
            shims[handler] = load_shim(name, per_handler[handler])
    except ShimLoadError:
        for loaded in shims.values():
            loaded.close()
        raise
    return HandlerRouter(shims, default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pycri-server",
        description="Serve the Kubernetes CRI (runtime.v1) over a pycri shim.",
    )
    parser.add_argument(
        "--shim",
        action="append",
        default=None,
        metavar="NAME[=HANDLER]",
        help="shim to serve (default: fake); repeat it to serve several, each as the runtime "
        "handler of its name (or HANDLER), e.g. --shim docker --shim nerdctl",
    )
    parser.add_argument(
        "--default-handler",
        default=None,
        metavar="HANDLER",
        help="with several shims: the handler of pods that name none (default: the first)",
    )
    parser.add_argument(
        "--shim-option",
        "-O",
        action="append",
        type=_shim_option,
        default=[],
        metavar="[HANDLER.]KEY=VALUE",
        help="option for the shim; repeatable; with several shims, prefix the handler",
    )
    parser.add_argument(
        "--listen",
        default=None,
        help=f"unix:///path or tcp://127.0.0.1:PORT (default: unix://{default_socket_path()})",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow TCP on a non-loopback address (the CRI has no authentication)",
    )
    parser.add_argument(
        "--socket-group",
        default=None,
        metavar="GROUP",
        help="group owning the unix socket (mode 0660), e.g. to let a non-root kubelet in",
    )
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate for TLS on tcp://")
    parser.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    parser.add_argument(
        "--tls-client-ca",
        type=Path,
        help="PEM CA bundle: require clients to present a certificate it signed (mutual TLS)",
    )
    parser.add_argument(
        "--allow-privileged",
        action="store_true",
        help="allow privileged containers and host network/PID/IPC namespaces",
    )
    parser.add_argument(
        "--streaming-address",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="where the Exec/Attach/PortForward streaming server listens (default: "
        "127.0.0.1:0, loopback on a free port; other hosts need --allow-remote)",
    )
    parser.add_argument(
        "--streaming-url",
        default=None,
        metavar="URL",
        help="base URL that Exec/Attach/PortForward answers point to, when clients must reach "
        "the streaming server by another name (default: http://HOST:PORT it listens on)",
    )
    parser.add_argument(
        "--no-streaming",
        action="store_true",
        help="serve no streaming URLs: Exec, Attach and PortForward answer UNIMPLEMENTED",
    )
    parser.add_argument("--max-workers", type=int, default=16, help="RPC worker threads")
    parser.add_argument(
        "--grace", type=float, default=5.0, help="seconds in-flight RPCs get at shutdown"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: info)",
    )
    parser.add_argument("--list-shims", action="store_true", help="list shims and exit")
    parser.add_argument("--version", action="version", version=f"pycri-server {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.list_shims:
        print("\n".join(available_shims()))
        return 0
    listen = args.listen or f"unix://{default_socket_path()}"
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        print("pycri-server: --tls-cert and --tls-key go together (and --tls-client-ca "
              "needs them)", file=sys.stderr)  # fmt: skip
        return 2
    tls = ServerTLS(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    try:
        endpoint = parse_endpoint(listen)
        shim = build_shim(args.shim or ["fake"], args.shim_option, args.default_handler)
    except (ValueError, ShimLoadError) as err:
        print(f"pycri-server: {err}", file=sys.stderr)
        return 2
    streaming = None
    if not args.no_streaming:
        try:
            streaming = StreamingServer(
                shim,
                args.streaming_address,
                allow_remote=args.allow_remote,
                base_url=args.streaming_url,
            ).start()
        except (ValueError, OSError) as err:
            print(f"pycri-server: streaming server: {err}", file=sys.stderr)
            shim.close()
            return 1
    runtime = CRIRuntime(shim, allow_privileged=args.allow_privileged, streaming=streaming)
    try:
        server = CRIServer(
            runtime,
            endpoint,
            max_workers=args.max_workers,
            allow_remote=args.allow_remote,
            socket_group=args.socket_group,
            tls=tls,
        ).start()
    except (ValueError, EndpointInUseError, OSError, RuntimeError) as err:
        print(f"pycri-server: cannot listen on {endpoint}: {err}", file=sys.stderr)
        if streaming is not None:
            streaming.stop()
        runtime.close()
        return 1

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    names = args.shim or ["fake"]
    shims = f"{', '.join(names)} shim{'s' if len(names) > 1 else ''}"
    print(f"pycri-server: serving the {shims} on {server.address}", file=sys.stderr)
    if streaming is not None:
        print(f"pycri-server: streaming on {streaming.url}", file=sys.stderr)
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        server.stop(grace=args.grace)
        if streaming is not None:
            streaming.stop()
        runtime.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
