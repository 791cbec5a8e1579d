"""Fuzz a pycri-server shim's gRPC surface and report (RELIABILITY.md quotes it).

    python scripts/fuzz_grpc.py --shim fake --iterations 100 --seed 1

Serves the shim in process on a temp unix socket, sends random, malformed,
oversized and boundary requests to every RPC (pycri.testing.fuzz), removes
whatever they managed to create, and prints the status codes, crashes (must
be 0) and leaked pods, containers and images (must be 0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.runtime import CRIRuntime
from pycri.registry import load_shim
from pycri.server.server import CRIServer
from pycri.testing.fuzz import fuzz_endpoint


def remove_new(client: CRIClient, pods: set[str], images: set[str]) -> None:
    """Remove what the fuzzer created (pods take their containers), keep what was there."""
    for pod in client.list_pod_sandbox().items:
        if pod.id not in pods:
            client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    for image in client.list_images().images:
        if image.id not in images:
            client.remove_image(cri.RemoveImageRequest(image=cri.ImageSpec(image=image.id)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shim", default="fake")
    parser.add_argument("--iterations", type=int, default=50, help="requests per RPC")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runtime = CRIRuntime(load_shim(args.shim))
    with tempfile.TemporaryDirectory(prefix="pycri-fuzz-") as tmp:
        server = CRIServer(runtime, f"unix://{Path(tmp) / 'cri.sock'}").start()
        try:
            with CRIClient(server.address, timeout=60) as client:
                before = (
                    {p.id for p in client.list_pod_sandbox().items},
                    {c.id for c in client.list_containers().containers},
                    {i.id for i in client.list_images().images},
                )
                started = time.monotonic()
                report = fuzz_endpoint(server.address, iterations=args.iterations, seed=args.seed)
                elapsed = time.monotonic() - started
                remove_new(client, before[0], before[2])
                images_after = {i.id for i in client.list_images().images}
                leaked = (
                    len({p.id for p in client.list_pod_sandbox().items} - before[0]),
                    len({c.id for c in client.list_containers().containers} - before[1]),
                    len(images_after - before[2]),
                )
                lost = len(before[2] - images_after)
        finally:
            server.stop(grace=1)
            runtime.close()
    print(f"shim {args.shim}, seed {args.seed}, {elapsed:.1f}s: {report.summary()}")
    print(f"leaked after cleanup: {leaked[0]} pods, {leaked[1]} containers, {leaked[2]} images")
    print(f"images that were there before and are gone: {lost}")
    for crash in report.crashes[:20]:
        print(f"  crash: {crash}")
    for error in sorted(set(report.engine_errors))[:10]:
        print(f"  engine error: {error}")
    ok = not report.crashes and report.alive and leaked == (0, 0, 0) and not lost
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
