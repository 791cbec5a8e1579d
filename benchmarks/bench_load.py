"""Load on pycri-server: concurrent lifecycles, then a kubelet-style relist soak.

    python benchmarks/bench_load.py [--shim fake] [-O KEY=VALUE]... [--clients 50] \\
        [--pods 110] [--containers-per-pod 3] [--soak-seconds 600] [--setup-workers 8]

Phase 1: ``--clients`` threads each run whole pod lifecycles (run pod,
create, start, exec, stop, remove, stop pod, remove pod) for
``--lifecycle-seconds``. Phase 2: ``--pods`` pods of ``--containers-per-pod``
running containers, relisted (ListPodSandbox + ListContainers) every second
for ``--soak-seconds`` while the server's RSS is sampled (the pods are set
up by ``--setup-workers`` clients at once). Prints errors (must be 0),
latencies and RSS over time; removes everything it created and checks that
nothing it labelled is left.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError

IMAGE = "docker.io/library/busybox:latest"


class Errors:
    """Failed calls counted by RPC and code, with the first message of each kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def add(self, err: CRIError) -> None:
        kind = f"{err.rpc}: {err.code.name}"
        self.counts[kind] += 1
        self.first.setdefault(kind, err.message)

    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        kinds = (f"\n    {n} x {kind}: {self.first[kind]}" for kind, n in self.counts.items())
        return f"{self.total()}" + "".join(kinds)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pod_config(name: str, run_id: str) -> cri.PodSandboxConfig:
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace="load", uid=f"{run_id}-{name}"),
        labels={"pycri.load": run_id},
    )


def container(client: CRIClient, pod_id: str, config: cri.PodSandboxConfig, name: str) -> str:
    container_id = client.create_container(
        cri.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            sandbox_config=config,
            config=cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name=name),
                image=cri.ImageSpec(image=IMAGE),
                command=["sleep", "3600"],
                labels={"pycri.load": config.labels["pycri.load"]},
            ),
        )
    ).container_id
    client.start_container(cri.StartContainerRequest(container_id=container_id))
    return container_id


def lifecycles(endpoint: str, run_id: str, clients: int, seconds: float) -> tuple[int, Errors]:
    done = 0
    errors = Errors()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(index: int) -> None:
        nonlocal done
        with CRIClient(endpoint, timeout=120) as client:
            n = 0
            while time.monotonic() < stop:
                n += 1
                config = pod_config(f"c{index}-{n}", run_id)
                try:
                    pod_id = client.run_pod_sandbox(
                        cri.RunPodSandboxRequest(config=config)
                    ).pod_sandbox_id
                    cid = container(client, pod_id, config, "app")
                    client.exec_sync(
                        cri.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=30)
                    )
                    client.stop_container(cri.StopContainerRequest(container_id=cid, timeout=0))
                    client.remove_container(cri.RemoveContainerRequest(container_id=cid))
                    client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
                    client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
                    with lock:
                        done += 1
                except CRIError as err:
                    with lock:
                        errors.add(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done, errors


def populate(client: CRIClient, run_id: str, pods: int, per_pod: int, workers: int) -> float:
    """Run the soak's pods and containers; seconds it took."""

    def one(p: int) -> None:
        config = pod_config(f"soak-{p}", run_id)
        pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        for c in range(per_pod):
            container(client, pod_id, config, f"c{c}")

    start = time.monotonic()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(one, range(pods)))  # re-raises the first failure
    return time.monotonic() - start


def soak(
    client: CRIClient, pid: int, seconds: float
) -> tuple[list[float], list[tuple[float, int]], Errors]:
    errors = Errors()
    latencies: list[float] = []
    rss: list[tuple[float, int]] = []
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        t0 = time.perf_counter()
        try:
            client.list_pod_sandbox()
            client.list_containers()
        except CRIError as err:
            errors.add(err)
        latencies.append(time.perf_counter() - t0)
        if not rss or elapsed - rss[-1][0] >= max(1.0, seconds / 10):
            rss.append((elapsed, rss_kib(pid)))
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))
    rss.append((time.monotonic() - start, rss_kib(pid)))
    return latencies, rss, errors


def cleanup(client: CRIClient, run_id: str) -> int:
    """Remove this run's pods; how many pods and containers are left (must be 0)."""
    pods = cri.ListPodSandboxRequest(
        filter=cri.PodSandboxFilter(label_selector={"pycri.load": run_id})
    )
    containers = cri.ListContainersRequest(
        filter=cri.ContainerFilter(label_selector={"pycri.load": run_id})
    )
    for pod in client.list_pod_sandbox(pods).items:
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    return len(client.list_pod_sandbox(pods).items) + len(
        client.list_containers(containers).containers
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shim", default="fake")
    parser.add_argument(
        "-O", "--shim-option", action="append", default=[], metavar="KEY=VALUE",
        help="passed to pycri-server, e.g. -O namespace=pycri-load for nerdctl",
    )  # fmt: skip
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--lifecycle-seconds", type=float, default=30.0)
    parser.add_argument("--pods", type=int, default=110)
    parser.add_argument("--containers-per-pod", type=int, default=3)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--setup-workers", type=int, default=8)
    parser.add_argument("--server-log-level", default="warning", help="its log goes to stderr")
    args = parser.parse_args(argv)
    options = [arg for option in args.shim_option for arg in ("-O", option)]
    run_id = uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory(prefix="pycri-load-") as tmp:
        sock = Path(tmp) / "cri.sock"
        server = subprocess.Popen(
            [sys.executable, "-m", "pycri.server.main", "--shim", args.shim, *options,
             "--listen", f"unix://{sock}", "--log-level", args.server_log_level,
             "--max-workers", "64"]
        )  # fmt: skip
        try:
            while not sock.exists():
                if server.poll() is not None:
                    print("pycri-server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            endpoint = f"unix://{sock}"
            with CRIClient(endpoint, timeout=120) as client:
                left = 0
                try:
                    print(f"shim {args.shim}: {args.clients} concurrent lifecycle clients "
                          f"for {args.lifecycle_seconds:g}s")  # fmt: skip
                    done, errors = lifecycles(
                        endpoint, run_id, args.clients, args.lifecycle_seconds
                    )
                    print(f"  lifecycles completed: {done}, errors: {errors}")
                    print(f"relist soak: {args.pods} pods x {args.containers_per_pod} containers, "
                          f"every 1s for {args.soak_seconds:g}s")  # fmt: skip
                    took = populate(
                        client, run_id, args.pods, args.containers_per_pod, args.setup_workers
                    )
                    print(f"  set up in {took:.1f}s by {args.setup_workers} clients")
                    latencies, rss, soak_errors = soak(client, server.pid, args.soak_seconds)
                    ms = sorted(x * 1000 for x in latencies)
                    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
                    print(f"  relists: {len(ms)}, errors: {soak_errors.total()}, "
                          f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
                    print("  server RSS over time: " + ", ".join(
                        f"{t:.0f}s {kib / 1024:.1f} MiB" for t, kib in rss))  # fmt: skip
                    failed = errors.total() + soak_errors.total()
                finally:
                    left = cleanup(client, run_id)
                    print(f"left behind after clean-up: {left} pods and containers")
        finally:
            server.terminate()
            server.wait(timeout=60)
    return 1 if failed or left else 0


if __name__ == "__main__":
    sys.exit(main())
