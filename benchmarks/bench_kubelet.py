"""pycri.kubelet on every CRI path: 50 pods from manifests to Running, and a relist at 110 pods.

    python benchmarks/bench_kubelet.py [--pods 50] [--relist-pods 110] [--paths fake,docker,...]

Paths, measured one after the other in one run and printed side by side:

* ``fake``: ``pycri-server --shim fake`` (a subprocess; the gRPC and pycri cost alone);
* ``docker``: ``pycri-server --shim docker`` on the machine's dockerd;
* ``nerdctl``: ``pycri-server --shim nerdctl`` on containerd (namespace pycri);
* ``containerd``: containerd's own CRI plugin on /run/containerd/containerd.sock (the peer).

Each pod is a pause sandbox and one busybox container (``sleep 3600``), one
manifest file per pod. "To Running" is the wall time from the first sync
until every pod's container runs, with the Kubelet's sync passes back to back
(its 16 workers sync pods in parallel). The relist is the kubelet's
ListPodSandbox + ListContainers at 110 pods: cold (a new kubelet fetching each
container's status once) and warm (steady state: the two list calls only).
Paths that are not available here are skipped with the reason. Everything
created is removed again.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.kubelet import Kubelet
from pycri.kubelet.model import labels as L
from pycri.kubelet.sync.observed import Relister

CONTAINERD = "unix:///run/containerd/containerd.sock"
BUSYBOX = "docker.io/library/busybox:latest"
PATHS = ("fake", "docker", "nerdctl", "containerd")


@dataclass
class Result:
    path: str
    skipped: str = ""
    to_running: float = 0.0
    passes: int = 0
    relist_cold_ms: float = 0.0
    relist_warm_ms: float = 0.0
    lists_ms: float = 0.0
    idle_sync_ms: float = 0.0
    teardown: float = 0.0
    notes: list[str] = field(default_factory=list)


def answers(endpoint: str) -> bool:
    if not Path(endpoint.removeprefix("unix://")).exists():
        return False
    with CRIClient(endpoint, timeout=5) as client:
        try:
            client.version()
        except CRIError:
            return False
    return True


@contextmanager
def endpoint_for(path: str, scratch: Path) -> Iterator[str]:
    if path == "containerd":
        if not answers(CONTAINERD):
            raise RuntimeError(f"{CONTAINERD} does not answer")
        yield CONTAINERD
        return
    socket = scratch / f"{path}.sock"
    log = scratch / f"{path}.log"
    args = [sys.executable, "-m", "pycri.server.main", "--shim", path]
    args += ["--listen", f"unix://{socket}", "--log-level", "warning", "--grace", "2"]
    with open(log, "w") as out:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while not answers(f"unix://{socket}"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pycri-server --shim {path}: {log.read_text()[-500:]}")
            time.sleep(0.1)
        with CRIClient(f"unix://{socket}", timeout=10) as client:
            if not client.image_status(
                cri.ImageStatusRequest(image=cri.ImageSpec(image=BUSYBOX))
            ).HasField("image"):
                raise RuntimeError(f"{BUSYBOX} is not present for the {path} shim")
        yield f"unix://{socket}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_pods(directory: Path, first: int, count: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(first, first + count):
        document = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"bench-{index}", "namespace": "bench"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "app",
                        "image": BUSYBOX,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sleep", "3600"],
                    }
                ],
            },
        }
        (directory / f"bench-{index}.yaml").write_text(yaml.safe_dump(document))


def converge(kubelet: Kubelet, done: Callable[[], bool], timeout: float) -> int:
    """Sync passes back to back until ``done``; the number of passes."""
    deadline = time.monotonic() + timeout
    passes = 0
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out converging")
        report = kubelet.sync_once()
        passes += 1
        if report.errors:
            print(f"  sync errors: {list(report.errors.values())[:2]}", file=sys.stderr)
    return passes


def all_running(kubelet: Kubelet, count: int) -> Callable[[], bool]:
    def check() -> bool:
        pods = kubelet.relister.relist()
        running = [
            p
            for p in pods.values()
            if p.sandbox and p.sandbox.ready and any(c.running for c in p.containers)
        ]
        return len(running) >= count

    return check


def median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def leftovers(client: CRIClient, node: str) -> int:
    selector = {L.NODE: node}
    pods = client.list_pod_sandbox(
        cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
    ).items
    return len(pods)


def bench_path(path: str, pods: int, relist_pods: int, rounds: int) -> Result:
    result = Result(path)
    scratch = Path(tempfile.mkdtemp(prefix="pycri-bk-"))
    node = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        with endpoint_for(path, scratch) as endpoint, CRIClient(endpoint, timeout=120) as client:
            kubelet = Kubelet(
                client,
                manifest_dir=scratch / "manifests",
                root_dir=scratch / "root",
                log_root=scratch / "logs",
                node_name=node,
            )
            try:
                write_pods(scratch / "manifests", 0, pods)
                started = time.perf_counter()
                result.passes = converge(kubelet, all_running(kubelet, pods), 900)
                result.to_running = time.perf_counter() - started
                write_pods(scratch / "manifests", pods, relist_pods - pods)
                converge(kubelet, all_running(kubelet, relist_pods), 1800)
                result.relist_cold_ms = median_ms(lambda: Relister(client, node).relist(), 3)
                relister = Relister(client, node)
                relister.relist()
                result.relist_warm_ms = median_ms(relister.relist, rounds)
                selector = {L.NODE: node}
                result.lists_ms = median_ms(
                    lambda: (
                        client.list_pod_sandbox(
                            cri.ListPodSandboxRequest(
                                filter=cri.PodSandboxFilter(label_selector=selector)
                            )
                        ),
                        client.list_containers(
                            cri.ListContainersRequest(
                                filter=cri.ContainerFilter(label_selector=selector)
                            )
                        ),
                    ),
                    rounds,
                )
                result.idle_sync_ms = median_ms(kubelet.sync_once, rounds)
            finally:
                shutil.rmtree(scratch / "manifests", ignore_errors=True)
                started = time.perf_counter()
                converge(kubelet, lambda: leftovers(client, node) == 0, 1800)
                result.teardown = time.perf_counter() - started
                kubelet.close()
    except RuntimeError as err:
        result.skipped = str(err)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--relist-pods", type=int, default=110)
    parser.add_argument("--rounds", type=int, default=20, help="rounds of each relist timing")
    parser.add_argument("--paths", default=",".join(PATHS))
    args = parser.parse_args()
    if args.relist_pods < args.pods:
        parser.error("--relist-pods must be at least --pods")
    results = []
    for path in args.paths.split(","):
        print(f"{path}: ...", file=sys.stderr, flush=True)
        results.append(bench_path(path, args.pods, args.relist_pods, args.rounds))
    ran = [r for r in results if not r.skipped]
    width = 14
    print(f"\n{args.pods} pods (pause + busybox) from manifests to Running; relist at "
          f"{args.relist_pods} pods")  # fmt: skip
    print(f"{'':<28}" + "".join(f"{r.path:>{width}}" for r in ran))
    rows: list[tuple[str, Callable[[Result], str]]] = [
        (f"to Running, {args.pods} pods (s)", lambda r: f"{r.to_running:.1f}"),
        ("  sync passes", lambda r: str(r.passes)),
        ("  per pod (ms)", lambda r: f"{r.to_running / args.pods * 1000:.0f}"),
        (f"relist cold, {args.relist_pods} (ms)", lambda r: f"{r.relist_cold_ms:.1f}"),
        (f"relist warm, {args.relist_pods} (ms)", lambda r: f"{r.relist_warm_ms:.1f}"),
        ("  of which the 2 lists (ms)", lambda r: f"{r.lists_ms:.1f}"),
        (f"idle sync pass, {args.relist_pods} (ms)", lambda r: f"{r.idle_sync_ms:.1f}"),
        (f"teardown, {args.relist_pods} pods (s)", lambda r: f"{r.teardown:.1f}"),
    ]
    for title, cell in rows:
        print(f"{title:<28}" + "".join(f"{cell(r):>{width}}" for r in ran))
    if "containerd" in [r.path for r in ran]:
        peer = next(r for r in ran if r.path == "containerd")
        print(f"\nratio to containerd's own CRI{'':<0}")
        for title, attr in (("to Running", "to_running"), ("relist warm", "relist_warm_ms")):
            cells = "".join(f"{getattr(r, attr) / getattr(peer, attr):>{width}.2f}" for r in ran)
            print(f"{title:<28}{cells}")
    for r in results:
        if r.skipped:
            print(f"{r.path}: skipped ({r.skipped})")


if __name__ == "__main__":
    main()
