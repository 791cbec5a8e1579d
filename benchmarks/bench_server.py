"""RPC throughput of pycri-server (fake shim) against a bare grpcio server.

    python benchmarks/bench_server.py [--seconds 2] [--rounds 5] [--containers 330] [--rpc NAME]

Both servers run as separate processes on unix sockets in one temp dir and
are driven by the same client, alternating rounds so that machine noise
hits both alike. The bare server answers with pre-serialised responses (for
ListContainers and ListPodSandbox, the very bytes pycri returned), so the
ratio is what pycri's servicer, core and shim cost on top of gRPC itself.

On a loaded machine the throughput ratio swings with the load; the CPU
columns are steadier: each server's own CPU time (from /proc) per call
answered, and their ratio (bare / pycri, so 1.00 means pycri costs no more).
"""

from __future__ import annotations

import argparse
import os
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


def serve_bare(socket_path: str, list_response_file: str, pods_response_file: str) -> None:
    """A grpcio server answering Version and the two lists with fixed bytes."""
    version = cri.VersionResponse(
        version="0.1.0", runtime_name="bare", runtime_version="0", runtime_api_version="v1"
    ).SerializeToString()
    listed = Path(list_response_file).read_bytes()
    pods = Path(pods_response_file).read_bytes()
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
                {
                    "Version": fixed(version),
                    "ListContainers": fixed(listed),
                    "ListPodSandbox": fixed(pods),
                },
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    call: Callable[[], object], seconds: float, threads: int, server_pid: int | None
) -> tuple[float, float]:
    """Calls per second, and the server's CPU microseconds per call (with its pid)."""
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    stop = time.monotonic() + seconds

    def worker() -> int:
        count = 0
        while time.monotonic() < stop:
            call()
            count += 1
        return count

    with futures.ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: worker(), range(threads)))
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    return total / seconds, cpu / max(total, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--containers", type=int, default=330)
    parser.add_argument(
        "--rpc",
        action="append",
        choices=["Version", "ListContainers", "ListPodSandbox"],
        help="measure only this RPC (repeatable; default: all three)",
    )
    parser.add_argument(
        "--bare-server", nargs=3, metavar=("SOCKET", "LIST", "PODS"), help=argparse.SUPPRESS
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
            pods_file = Path(tmp) / "pods.bin"
            pods_file.write_bytes(pycri_client.list_pod_sandbox().SerializeToString())
            bare_proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--bare-server",
                    str(bare_sock),
                    str(response_file),
                    str(pods_file),
                ]
            )
            wait_for_socket(bare_sock, bare_proc)
            bare_client = CRIClient(f"unix://{bare_sock}")

            pods = len(pycri_client.list_pod_sandbox().items)
            print(
                f"{args.rounds} alternating rounds of {args.seconds:g}s, "
                f"{args.threads} client threads, {args.containers} containers "
                f"in {pods} pods listed"
            )
            print(
                f"{'RPC':<16}{'pycri (rps)':>14}{'bare grpcio (rps)':>20}{'ratio':>8}"
                f"{'pycri CPU/call':>16}{'bare CPU/call':>15}{'CPU ratio':>11}"
            )
            methods = {
                "Version": "version",
                "ListContainers": "list_containers",
                "ListPodSandbox": "list_pod_sandbox",
            }
            for name in args.rpc or methods:
                method = methods[name]
                ours, bare = getattr(pycri_client, method), getattr(bare_client, method)
                ours(), bare()  # warm up connections
                samples: dict[str, list[tuple[float, float]]] = {"pycri": [], "bare": []}
                for _ in range(args.rounds):
                    for key, call, pid in (
                        ("pycri", ours, pycri_proc.pid),
                        ("bare", bare, bare_proc.pid),
                    ):
                        samples[key].append(measure(call, args.seconds, args.threads, pid))
                mine = statistics.median(rate for rate, _ in samples["pycri"])
                base = statistics.median(rate for rate, _ in samples["bare"])
                mine_cpu = statistics.median(cpu for _, cpu in samples["pycri"])
                base_cpu = statistics.median(cpu for _, cpu in samples["bare"])
                cpu_ratio = f"{base_cpu / mine_cpu:.2f}" if mine_cpu else "-"
                print(
                    f"{name:<16}{mine:>14.0f}{base:>20.0f}{mine / base:>8.2f}"
                    f"{mine_cpu:>13.0f} us{base_cpu:>12.0f} us{cpu_ratio:>11}"
                )
            pycri_client.close()
            bare_client.close()
        finally:
            for proc in (pycri_proc, bare_proc):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)


if __name__ == "__main__":
    main()
