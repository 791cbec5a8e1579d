"""pycri.testing.critest: the commands the conformance gate and the benchmark run critest with."""

from __future__ import annotations

from pathlib import Path

from pycri.testing.critest import run_critest, run_critest_benchmark

ENDPOINT = "unix:///run/x.sock"


def fake_critest(tmp_path: Path, code: int) -> str:
    """A critest that writes its arguments and working directory, one a line."""
    script = tmp_path / "critest"
    script.write_text(f'#!/bin/sh\npwd\nfor a in "$@"; do echo "$a"; done\nexit {code}\n')
    script.chmod(0o755)
    return str(script)


def logged(directory: Path) -> list[str]:
    return (directory / "critest.log").read_text().splitlines()


def test_the_benchmark_runs_in_its_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    params = tmp_path / "params.yaml"
    code, seconds = run_critest_benchmark(
        fake_critest(tmp_path, 3), ENDPOINT, params, out, timeout=90
    )
    assert code == 3
    assert seconds >= 0
    header, cwd, *args = logged(out)
    assert header.startswith("# ")
    assert cwd == str(out)
    assert args == [
        f"-runtime-endpoint={ENDPOINT}",
        f"-image-endpoint={ENDPOINT}",
        "-ginkgo.no-color",
        "-ginkgo.timeout=90s",
        "-benchmark",
        f"-benchmarking-params-file={params}",
        f"-benchmarking-output-dir={out}",
    ]


def test_the_suite_run_asks_for_a_report_and_a_seed(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    run = run_critest(fake_critest(tmp_path, 0), ENDPOINT, reports, timeout=60, seed=7)
    assert run.returncode == 0
    assert run.results == {}  # no report written
    _, cwd, *args = logged(reports)
    assert cwd == str(reports)
    assert args == run.command[1:]
    assert args[:4] == [
        f"-runtime-endpoint={ENDPOINT}",
        f"-image-endpoint={ENDPOINT}",
        "-ginkgo.no-color",
        "-ginkgo.timeout=60s",
    ]
    assert f"-ginkgo.json-report={reports / 'report.json'}" in args
    assert "-ginkgo.seed=7" in args
