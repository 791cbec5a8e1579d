"""RPC throughput of pycri-server (fake shim) against a bare grpcio server.

    python benchmarks/bench_server.py [--seconds 2] [--rounds 5] [--containers 330]

Both servers run as separate processes on unix sockets in one temp dir and
are driven by the same client, alternating rounds so that machine noise
hits both alike. The bare server answers with pre-serialised responses (for
ListContainers, the very bytes pycri returned), so the ratio is what pycri's
servicer, core and shim cost on top of gRPC itself.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient

RUNTIME = "/runtime.v1.RuntimeService/"


def serve_bare(socket_path: str, list_response_file: str) -> None:
    """A grpcio server answering Version and ListContainers with fixed bytes."""
    version = cri.VersionResponse(
        version="0.1.0", runtime_name="bare", runtime_version="0", runtime_api_version="v1"
    ).SerializeToString()
    listed = Path(list_response_file).read_bytes()
    identity: Callable[[bytes], bytes] = lambda raw: raw  # noqa: E731

    def fixed(answer: bytes) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: answer,
            request_deserializer=identity,
            response_serializer=identity,
        )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "runtime.v1.RuntimeService",
                {"Version": fixed(version), "ListContainers": fixed(listed)},
            )
        ]
    )
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    server.wait_for_termination()


def wait_for_socket(path: Path, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"server for {path} did not start")
        time.sleep(0.05)


def populate(client: CRIClient, containers: int) -> None:
    per_pod = 3
    for p in range((containers + per_pod - 1) // per_pod):
        config = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=f"bench-{p}", namespace="bench", uid=f"u{p}"),
            labels={"app": f"bench-{p}"},
        )
        pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        for c in range(min(per_pod, containers - p * per_pod)):
            container_id = client.create_container(
                cri.CreateContainerRequest(
                    pod_sandbox_id=pod_id,
                    sandbox_config=config,
                    config=cri.ContainerConfig(
                        metadata=cri.ContainerMetadata(name=f"c{c}"),
                        image=cri.ImageSpec(image="busybox"),
                        command=["sleep", "infinity"],
                        labels={"app": f"bench-{p}", "container": f"c{c}"},
                    ),
                )
            ).container_id
            client.start_container(cri.StartContainerRequest(container_id=container_id))


def throughput(call: Callable[[], object], seconds: float, threads: int) -> float:
    stop = time.monotonic() + seconds

    def worker() -> int:
        count = 0
        while time.monotonic() < stop:
            call()
            count += 1
        return count

    with futures.ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: worker(), range(threads)))
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--containers", type=int, default=330)
    parser.add_argument(
        "--bare-server", nargs=2, metavar=("SOCKET", "RESPONSE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.bare_server:
        serve_bare(*args.bare_server)
        return

    with tempfile.TemporaryDirectory(prefix="pycri-bench-") as tmp:
        pycri_sock, bare_sock = Path(tmp) / "pycri.sock", Path(tmp) / "bare.sock"
        pycri_proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pycri.server.main",
                "--shim",
                "fake",
                "--listen",
                f"unix://{pycri_sock}",
                "--log-level",
                "warning",
            ]
        )
        bare_proc: subprocess.Popen[bytes] | None = None
        try:
            wait_for_socket(pycri_sock, pycri_proc)
            pycri_client = CRIClient(f"unix://{pycri_sock}")
            populate(pycri_client, args.containers)
            listed = pycri_client.list_containers()
            assert len(listed.containers) == args.containers
            response_file = Path(tmp) / "list.bin"
            response_file.write_bytes(listed.SerializeToString())
            bare_proc = subprocess.Popen(
                [sys.executable, __file__, "--bare-server", str(bare_sock), str(response_file)]
            )
            wait_for_socket(bare_sock, bare_proc)
            bare_client = CRIClient(f"unix://{bare_sock}")

            print(
                f"{args.rounds} alternating rounds of {args.seconds:g}s, "
                f"{args.threads} client threads, {args.containers} containers listed"
            )
            print(f"{'RPC':<16}{'pycri (rps)':>14}{'bare grpcio (rps)':>20}{'ratio':>8}")
            for name in ("Version", "ListContainers"):
                method = "version" if name == "Version" else "list_containers"
                ours, bare = getattr(pycri_client, method), getattr(bare_client, method)
                ours(), bare()  # warm up connections
                samples: dict[str, list[float]] = {"pycri": [], "bare": []}
                for _ in range(args.rounds):
                    samples["pycri"].append(throughput(ours, args.seconds, args.threads))
                    samples["bare"].append(throughput(bare, args.seconds, args.threads))
                mine = statistics.median(samples["pycri"])
                base = statistics.median(samples["bare"])
                print(f"{name:<16}{mine:>14.0f}{base:>20.0f}{mine / base:>8.2f}")
            pycri_client.close()
            bare_client.close()
        finally:
            for proc in (pycri_proc, bare_proc):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)


if __name__ == "__main__":
    main()
