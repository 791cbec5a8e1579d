"""critest's own ``-benchmark`` mode on each pycri shim, beside containerd's CRI.

    python benchmarks/bench_critest.py [--targets docker,nerdctl,containerd]
        [--rounds 1] [--params benchmarks/critest-benchmark.yaml] [--out DIR]

critest (cri-tools v1.37) times pod, container and image operations through
any CRI endpoint, N samples each, and writes one JSON file per benchmark.
This runs it against ``pycri-server --shim docker``, ``--shim nerdctl`` (in
a namespace of its own) and containerd's own CRI (the reference), one
endpoint after the other; with ``--rounds`` above 1 the order rotates every
round and the samples of all rounds are pooled, so machine noise hits every
target alike. It prints each operation's mean per target, side by side, with
the ratio of each pycri shim to the reference (and p50/p95 in the per-target
tables written to ``DIR/<target>/summary.txt``).

The image benchmarks pull and remove images of pycri's own, pushed to the
local registry first (see critest-benchmark.yaml); the pod and container
benchmarks use the sandbox image and critest's busybox. containerd's CRI
runs in its k8s.io namespace: what critest leaves there (pods of this run
only: other critest runs may share the engine) is removed, and the images
the rest of the project relies on are checked before and after
(scripts/setup-runtimes.sh and setup-critest.sh put them back should they
go). Needs root, and the runtimes and critest those scripts set up. Not part
of the test suite.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.testing.critest import find_critest, run_critest_benchmark
from pycri.testing.critest_endpoints import (
    CRITEST_POD_NAMESPACE,
    REFERENCE,
    SANDBOX_IMAGE,
    critest_endpoint,
    pull_sandbox_image,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PARAMS = HERE / "critest-benchmark.yaml"
SHIMS = ("docker", "nerdctl")
#: the nerdctl shim's namespace here: not the test suite's, not critest gate's
NERDCTL_NAMESPACE = "pycri-critest-bench"
REGISTRY = "127.0.0.1:5000"
#: the repository of the image benchmarks' images (critest-benchmark.yaml)
BENCH_REPOSITORY = "pycri-bench/image"
#: the mirrored name under which every engine pulls it
BENCH_IMAGE_NAME = f"registry.k8s.io/{BENCH_REPOSITORY}"
#: images the rest of the project relies on, per engine (scripts/setup-runtimes.sh)
KEPT = {
    "docker": ("busybox:latest", SANDBOX_IMAGE),
    "nerdctl": (),
    REFERENCE: ("docker.io/library/busybox:latest", SANDBOX_IMAGE),
}
#: pod names only critest's benchmarks use (pkg/benchmark/pod.go, pod_container.go); the
#: container benchmark's pods are named as the validation specs' (framework.util.go)
BENCH_ONLY_POD_PREFIXES = (
    "PodSandbox-for-creating-performance-test-",
    "PodSandbox-for-creating-pod-and-container-performance-test-",
)

Samples = dict[str, list[float]]  # operation -> milliseconds


# -- summarising critest's JSON ----------------------------------------------------------


@dataclass
class Benchmark:
    """One benchmark's samples: per operation, milliseconds, in critest's order."""

    name: str
    parallel: int
    operations: list[str] = field(default_factory=list)
    samples: Samples = field(default_factory=dict)

    def add(self, other: Benchmark) -> None:
        for op in other.operations:
            if op not in self.samples:
                self.operations.append(op)
            self.samples.setdefault(op, []).extend(other.samples.get(op, []))


def read_benchmark(path: Path) -> Benchmark:
    """A ``*_benchmark_data.json`` file of ``-benchmarking-output-dir``.

    Its ``operationsNames`` name the columns of every datapoint's
    ``operationsDurationsNs``; a sample that failed part-way has fewer.
    """
    data = json.loads(path.read_text())
    names = list(data.get("operationsNames") or [])
    bench = Benchmark(
        name=path.name.removesuffix(".json").removesuffix("_data").removesuffix("_benchmark"),
        parallel=int(data.get("numParallel") or 1),
        operations=names,
    )
    for index, op in enumerate(names):
        bench.samples[op] = [
            point["operationsDurationsNs"][index] / 1e6
            for point in data.get("datapoints") or []
            if len(point.get("operationsDurationsNs") or []) > index
        ]
    return bench


def read_run(directory: Path) -> dict[str, Benchmark]:
    """Every benchmark of one critest run, by name."""
    return {
        bench.name: bench
        for bench in map(read_benchmark, sorted(directory.glob("*_benchmark_data.json")))
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary_table(benchmarks: Mapping[str, Benchmark]) -> str:
    """Per operation: samples, parallelism, mean, p50, p95, max (ms)."""
    header = (
        f"{'benchmark':<16} {'operation':<16} {'N':>4} {'par':>4} "
        f"{'mean ms':>9} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}"
    )
    lines = [header, "-" * len(header)]
    for bench in benchmarks.values():
        for op in bench.operations:
            values = bench.samples.get(op) or []
            if not values:
                continue
            lines.append(
                f"{bench.name:<16} {op:<16} {len(values):>4} {bench.parallel:>4} "
                f"{statistics.fmean(values):>9.1f} {percentile(values, 0.5):>9.1f} "
                f"{percentile(values, 0.95):>9.1f} {max(values):>9.1f}"
            )
    return "\n".join(lines)


def comparison_table(runs: Mapping[str, Mapping[str, Benchmark]], reference: str) -> str:
    """Mean ms per operation for every target side by side, each target's ratio to ``reference``.

    Operations come in the order critest reports them; a target without
    samples of an operation (its benchmark failed) shows ``-``.
    """
    targets = list(runs)
    others = [t for t in targets if t != reference]
    rows: list[tuple[str, str]] = []
    for benchmarks in runs.values():
        for bench in benchmarks.values():
            rows.extend((bench.name, op) for op in bench.operations if (bench.name, op) not in rows)

    def mean(target: str, bench: str, op: str) -> float | None:
        found = runs[target].get(bench)
        values = found.samples.get(op) if found else None
        return statistics.fmean(values) if values else None

    cells = [f"{t + ' ms':>13}" for t in targets] + [
        f"{t + '/' + reference:>{max(8, len(t) + len(reference) + 1)}}" for t in others
    ]
    header = f"{'benchmark':<16} {'operation':<16} " + " ".join(cells)
    lines = [header, "-" * len(header)]
    for name, op in rows:
        means = {t: mean(t, name, op) for t in targets}
        row = [f"{means[t]:>13.1f}" if means[t] is not None else f"{'-':>13}" for t in targets]
        base = means.get(reference)
        for t in others:
            width = max(8, len(t) + len(reference) + 1)
            value = means[t]
            row.append(f"{value / base:>{width}.2f}" if value and base else f"{'-':>{width}}")
        lines.append(f"{name:<16} {op:<16} " + " ".join(row))
    return "\n".join(lines)


# -- images of the image benchmarks ------------------------------------------------------


def params_images(params: Path) -> list[str]:
    """The images of pycri's own a parameters file names (pulling and listing benchmarks)."""
    data = yaml.safe_load(params.read_text()) or {}
    named = [
        data.get("imagePullingBenchmarkImage"),
        *(data.get("imageListingBenchmarkImages") or []),
    ]
    return [str(image) for image in named if str(image).startswith(BENCH_IMAGE_NAME + ":")]


def _in_registry(tag: str) -> bool:
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{BENCH_REPOSITORY}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bool(response.status == 200)
    except urllib.error.URLError:
        return False


def push_bench_images(images: Sequence[str]) -> None:
    """Put each tag into the local registry once: one small file, so a distinct image each."""
    for image in images:
        tag = image.rsplit(":", 1)[1]
        if _in_registry(tag):
            continue
        local = f"{REGISTRY}/{BENCH_REPOSITORY}:{tag}"
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            content = f"pycri critest benchmark image {tag}\n".encode()
            info = tarfile.TarInfo(f"pycri-bench-{tag}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        subprocess.run(
            ["docker", "import", "--change", 'CMD ["/pycri-bench"]', "-", local],
            input=archive.getvalue(),
            check=True,
            capture_output=True,
        )
        try:
            subprocess.run(["docker", "push", "-q", local], check=True, capture_output=True)
        finally:
            subprocess.run(["docker", "rmi", local], check=False, capture_output=True)
        print(f"pushed {local}")


# -- engines -----------------------------------------------------------------------------


def _output(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    return done.stdout if done.returncode == 0 else ""


def image_ids(target: str) -> dict[str, str]:
    """The kept images of ``target``'s engine: reference -> id (absent ones left out)."""
    refs = KEPT[target]
    ids: dict[str, str] = {}
    if target == "docker":
        for ref in refs:
            found = _output("docker", "image", "inspect", "-f", "{{.Id}}", ref).strip()
            if found:
                ids[ref] = found
    elif refs:
        for line in _output("ctr", "-n", "k8s.io", "images", "ls").splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] in refs:
                ids[fields[0]] = fields[2]
    return ids


def restore_images(target: str, before: Mapping[str, str]) -> list[str]:
    """Rerun the setup scripts if the run took an image the project relies on."""
    after = image_ids(target)
    lost = [ref for ref, image in before.items() if after.get(ref) != image]
    if lost:
        print(f"  {target}: {', '.join(lost)} changed or went missing; running the setup scripts")
        for script in ("setup-runtimes.sh", "setup-critest.sh"):
            subprocess.run(["bash", str(ROOT / "scripts" / script)], check=False)
    return lost


def remove_bench_images(endpoint: str, images: Sequence[str]) -> None:
    """The benchmark images a failed run left in the engine (critest removes them itself)."""
    with CRIClient(endpoint, timeout=60) as client:
        for image in images:
            try:
                client.remove_image(cri.RemoveImageRequest(image=cri.ImageSpec(image=image)))
            except CRIError:
                pass


def run_pod_ids(directory: Path) -> set[str]:
    """The pods critest's samples of this run made (``metaInfo.podId`` of every datapoint)."""
    ids = set()
    for path in directory.glob("*_benchmark_data.json"):
        for point in json.loads(path.read_text()).get("datapoints") or []:
            pod_id = (point.get("metaInfo") or {}).get("podId")
            if pod_id:
                ids.add(str(pod_id))
    return ids


def remove_bench_pods(endpoint: str, since_ns: int, ours: set[str]) -> list[str]:
    """Pods this critest run left: removed, named.

    Only pods known to be this run's: recorded in its output (``ours``), or
    made since ``since_ns`` under a name only the benchmarks use. The engine
    is shared (another critest, the test suite's critest gate, may be running
    on the same dockerd or k8s.io): critest's validation specs name their pods
    much like the benchmarks (``create-PodSandbox-for-container-``,
    ``PodSandbox-for-``), so a name alone never makes a pod ours.
    """
    left = []
    with CRIClient(endpoint, timeout=120) as client:
        for pod in client.list_pod_sandbox(cri.ListPodSandboxRequest()).items:
            meta = pod.metadata
            benchmark_only = pod.created_at >= since_ns and meta.name.startswith(
                BENCH_ONLY_POD_PREFIXES
            )
            if not meta.namespace.startswith(CRITEST_POD_NAMESPACE):
                continue
            if pod.id not in ours and not benchmark_only:
                continue
            left.append(f"{pod.id[:13]} {meta.name}")
            try:
                client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
                client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
            except CRIError as err:
                print(f"  cannot remove pod {pod.id[:13]}: {err.message}")
    return left


def run_target(
    target: str, critest: str, params: Path, out: Path, images: Sequence[str], timeout: float
) -> dict[str, Benchmark]:
    kept = image_ids(target)
    if target == "nerdctl":
        pull_sandbox_image(NERDCTL_NAMESPACE)
    started_ns = time.time_ns()
    with tempfile.TemporaryDirectory(prefix="pycri-cb-") as tmp:  # short: a socket goes here
        with critest_endpoint(
            target, Path(tmp), nerdctl_namespace=NERDCTL_NAMESPACE, log_level="warning"
        ) as endpoint:
            try:
                code, seconds = run_critest_benchmark(
                    critest, endpoint, params, out, timeout=timeout
                )
            finally:
                left = remove_bench_pods(endpoint, started_ns, run_pod_ids(out))
                remove_bench_images(endpoint, images)
        log = Path(tmp) / "server.log"
        if log.exists():
            shutil.copy(log, out / "pycri-server.log")
    lost = restore_images(target, kept)
    results = read_run(out)
    (out / "summary.txt").write_text(summary_table(results) + "\n")
    note = f"exit {code}" + (f", {len(left)} pods left (removed)" if left else "")
    note += f", restored {', '.join(lost)}" if lost else ""
    print(f"  {target}: {seconds:.0f}s, {note}; log {out / 'critest.log'}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--targets",
        default=",".join([*SHIMS, REFERENCE]),
        help=f"comma-separated, of {', '.join([*SHIMS, REFERENCE])}",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per target, order rotating")
    parser.add_argument("--params", type=Path, default=PARAMS, help="critest's parameters file")
    parser.add_argument("--out", type=Path, help="keep critest's output here (default: temp)")
    parser.add_argument("--critest", default=find_critest())
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per critest run")
    args = parser.parse_args()

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in (*SHIMS, REFERENCE)]
    if unknown:
        parser.error(f"unknown targets {unknown}")
    params = args.params.resolve()
    images = params_images(params)
    push_bench_images(images)
    base = args.out or Path(tempfile.mkdtemp(prefix="pycri-bench-critest-"))
    pooled: dict[str, dict[str, Benchmark]] = {t: {} for t in targets}
    for round_index in range(args.rounds):
        order = targets[round_index % len(targets) :] + targets[: round_index % len(targets)]
        print(f"round {round_index + 1}/{args.rounds}: {', '.join(order)}")
        for target in order:
            out = base / f"round{round_index + 1}" / target
            for name, bench in run_target(
                target, args.critest, params, out, images, args.timeout
            ).items():
                pooled[target].setdefault(name, Benchmark(name, bench.parallel)).add(bench)
    for target in targets:
        print(f"\n{target}\n{summary_table(pooled[target])}")
    reference = REFERENCE if REFERENCE in targets else targets[0]
    print(f"\nmean per operation, {args.rounds} round(s) pooled, ratio to {reference}")
    print(comparison_table(pooled, reference))
    print(f"\ncritest output: {base}")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("needs root (it drives the engines and pycri-server)")
    sys.exit(main())
