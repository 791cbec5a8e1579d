"""benchmarks/bench_critest.py's summaries of critest -benchmark output (captured JSON)."""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
CAPTURED = Path(__file__).parent / "data" / "critest-benchmark"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_critest", ROOT / "benchmarks" / "bench_critest.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_reads_every_benchmark_of_a_run(bench: ModuleType) -> None:
    run = bench.read_run(CAPTURED)
    assert list(run) == ["image_listing", "pod"]
    pod = run["pod"]
    assert pod.parallel == 2
    assert pod.operations == ["CreatePod", "StatusPod", "StopPod", "RemovePod"]
    # the third sample failed after CreatePod: it counts for that operation only
    assert pod.samples["CreatePod"] == pytest.approx([605.507537, 791.602355, 665.10294])
    assert pod.samples["StatusPod"] == pytest.approx([7.384963, 6.506235])
    assert run["image_listing"].samples["ListImages"] == pytest.approx([7.671691, 6.934237])


def test_summary_table(bench: ModuleType) -> None:
    lines = bench.summary_table(bench.read_run(CAPTURED)).splitlines()
    assert lines[0].split() == [
        "benchmark", "operation", "N", "par", "mean", "ms", "p50", "ms", "p95", "ms", "max", "ms",
    ]  # fmt: skip
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in lines[2:]}
    assert rows[("pod", "CreatePod")] == ["3", "2", "687.4", "665.1", "779.0", "791.6"]
    assert rows[("pod", "RemovePod")] == ["2", "2", "59.9", "59.9", "66.1", "66.8"]
    assert rows[("image_listing", "ListImages")][:3] == ["2", "1", "7.3"]


def test_runs_pool_and_compare_with_the_reference(bench: ModuleType) -> None:
    docker = bench.read_run(CAPTURED)
    again = bench.read_run(CAPTURED)
    docker["pod"].add(again["pod"])  # a second round of the same
    assert len(docker["pod"].samples["CreatePod"]) == 6
    reference = bench.Benchmark("pod", 2, ["CreatePod", "StatusPod"])
    reference.samples = {"CreatePod": [343.7, 343.7], "StatusPod": [3.5]}
    table = bench.comparison_table(
        {"docker": docker, "containerd": {"pod": reference}}, "containerd"
    )
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in table.splitlines()[2:]}
    create = statistics.fmean(docker["pod"].samples["CreatePod"])
    assert rows[("pod", "CreatePod")] == [f"{create:.1f}", "343.7", f"{create / 343.7:.2f}"]
    assert rows[("pod", "StatusPod")] == ["6.9", "3.5", "1.98"]
    # what the reference did not measure shows as such
    assert rows[("pod", "StopPod")][1:] == ["-", "-"]
    assert rows[("image_listing", "ListImages")] == ["7.3", "-", "-"]
    assert table.splitlines()[0].split()[2:] == [
        "docker",
        "ms",
        "containerd",
        "ms",
        "docker/containerd",
    ]


def test_percentile_interpolates(bench: ModuleType) -> None:
    assert bench.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert bench.percentile([5.0], 0.95) == 5.0


def test_params_name_only_our_own_images(bench: ModuleType, tmp_path: Path) -> None:
    shipped = bench.params_images(ROOT / "benchmarks" / "critest-benchmark.yaml")
    assert shipped
    assert all(i.startswith("registry.k8s.io/pycri-bench/image:") for i in shipped)
    assert len(set(shipped)) == len(shipped)
    params = tmp_path / "p.yaml"
    params.write_text(
        "imagePullingBenchmarkImage: registry.k8s.io/pycri-bench/image:pull\n"
        "imageListingBenchmarkImages: [busybox:latest, registry.k8s.io/pycri-bench/image:l]\n"
    )
    # never pushed over (or, by critest, removed from) anything but pycri-bench's
    assert bench.params_images(params) == [
        "registry.k8s.io/pycri-bench/image:pull",
        "registry.k8s.io/pycri-bench/image:l",
    ]


def test_only_this_runs_pods_are_cleaned_up(bench: ModuleType) -> None:
    assert bench.run_pod_ids(CAPTURED) == {
        "c01f94e8974ac8a8725b1a451db6b70c2d3d49f867c5cca325bedc8a42dba1ab",
        "65266928a86fbd0454596c0d4f4dbb7a19fa2f8bd7f343b340f060a142ef28bd",
        "1f5ee2e706a270bdc03c7f999b5b3bea53a681e72009bbbdd6c2dd56754a1b00",
    }
    # critest's validation specs (a concurrent critest gate) name pods like these
    for theirs in (
        "create-PodSandbox-for-container-1",
        "create-Privileged-PodSandbox-for-container-1",
        "PodSandbox-for-multi-container-test-1",
        "PodSandbox-for-test-stop-1",
        "PodSandbox-for-create-test-1",
    ):
        assert not theirs.startswith(bench.BENCH_ONLY_POD_PREFIXES)
    assert "PodSandbox-for-creating-performance-test-1".startswith(bench.BENCH_ONLY_POD_PREFIXES)
