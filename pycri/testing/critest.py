"""Run critest, the CRI conformance suite, and hold its result against a list.

critest (``sigs.k8s.io/cri-tools/cmd/critest``) is what containerd, CRI-O and
cri-dockerd run in their own CI. :func:`run_critest` runs it against one
endpoint with a ginkgo JSON report; :func:`parse_report` reads which specs
passed, failed or skipped themselves; :func:`compare` holds the passed ones
against a committed list of specs expected to pass (one spec's full text per
line, see :func:`spec_name`). The lists only grow: an expected spec that did
not pass is a regression, a passing one that is not listed yet is news.
:func:`run_critest_benchmark` runs critest's own ``-benchmark`` mode instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Comparison",
    "CritestRun",
    "SpecResult",
    "compare",
    "find_critest",
    "parse_report",
    "read_spec_list",
    "run_critest",
    "run_critest_benchmark",
    "short_message",
    "spec_name",
]

#: where scripts/setup-critest.sh installs it
INSTALLED_CRITEST = "/usr/local/bin/critest"
#: ginkgo states that mean the spec ran and did not pass
_FAILED_STATES = {"failed", "panicked", "timedout", "interrupted", "aborted"}


@dataclass(frozen=True)
class SpecResult:
    """One selected spec: ``state`` is ``passed``, ``skipped`` or a failure state."""

    name: str
    state: str
    message: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.state in _FAILED_STATES


def spec_name(spec: Mapping[str, Any]) -> str:
    """A spec's full text: its container hierarchy texts and leaf text, space-joined."""
    texts = [str(t) for t in spec.get("ContainerHierarchyTexts") or []]
    return " ".join([*texts, str(spec.get("LeafNodeText", ""))])


def parse_report(path: Path) -> dict[str, SpecResult]:
    """The selected specs of a ginkgo JSON report (``-ginkgo.json-report``), by name.

    Specs filtered out by focus/skip (skipped without a message) are left out;
    a spec that skipped itself at run time (``Skip("AppArmor is disabled")``)
    is in, as ``skipped``. Failures of suite-level nodes (BeforeSuite, ...)
    come back under the node's type, as failed.
    """
    reports = json.loads(path.read_text())
    results: dict[str, SpecResult] = {}
    for suite in reports:
        for spec in suite.get("SpecReports") or []:
            state = str(spec.get("State", ""))
            message = str((spec.get("Failure") or {}).get("Message") or "").strip()
            seconds = float(spec.get("RunTime") or 0) / 1e9
            if spec.get("LeafNodeType") != "It":
                if state not in ("passed", "skipped"):
                    name = f"[{spec.get('LeafNodeType')}] {spec.get('LeafNodeText', '')}".strip()
                    results[name] = SpecResult(name, state, message, seconds)
                continue
            if state in ("skipped", "pending") and not message:
                continue  # not selected
            name = spec_name(spec)
            results[name] = SpecResult(name, state, message, seconds)
    return results


def short_message(message: str, limit: int = 200) -> str:
    """A failure message on one line, without gomega's dumps of Go structs."""
    kept: list[str] = []
    for raw in message.splitlines():
        line = raw.strip()
        if not line or line.startswith(("<", "{", "}", "s:", "Code:", "Details:")):
            continue
        kept.append(line)
    text = " ".join(kept) or message.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_spec_list(path: Path) -> set[str]:
    """A committed list: one spec name a line; blank lines and ``#`` comments ignored."""
    names = set()
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            names.add(line.rstrip())
    return names


@dataclass(frozen=True)
class Comparison:
    """The passed specs against the expected list."""

    #: expected to pass, but did not (failed, skipped, or not run at all)
    regressions: dict[str, str] = field(default_factory=dict)
    #: passed, not listed yet
    new: list[str] = field(default_factory=list)

    def describe_regressions(self) -> str:
        return "\n".join(f"  {name}\n      {why}" for name, why in sorted(self.regressions.items()))


def compare(results: Mapping[str, SpecResult], expected: Iterable[str]) -> Comparison:
    """Which expected specs did not pass (with why, shortly) and which passed news."""
    passed = {name for name, result in results.items() if result.state == "passed"}
    regressions = {}
    for name in sorted(set(expected) - passed):
        result = results.get(name)
        if result is None:
            regressions[name] = "not run (renamed, or not selected?)"
        else:
            regressions[name] = f"{result.state}: {short_message(result.message)}"
    return Comparison(regressions, sorted(passed - set(expected)))


@dataclass(frozen=True)
class CritestRun:
    """What :func:`run_critest` did."""

    command: list[str]
    returncode: int
    seconds: float
    report_dir: Path
    results: dict[str, SpecResult]

    def count(self, state: str) -> int:
        if state == "failed":
            return sum(1 for r in self.results.values() if r.failed)
        return sum(1 for r in self.results.values() if r.state == state)

    def summary(self) -> str:
        """``P passed, F failed, S skipped of T in Ns``."""
        return (
            f"{self.count('passed')} passed, {self.count('failed')} failed, "
            f"{self.count('skipped')} skipped of {len(self.results)} in {self.seconds:.0f}s"
        )


def run_critest(
    critest: str,
    endpoint: str,
    report_dir: Path,
    *,
    timeout: float = 1800.0,
    seed: int | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> CritestRun:
    """Run critest against ``endpoint`` (runtime and image service).

    ``report_dir`` gets ``critest.log`` (ginkgo's verbose output),
    ``report.json`` and whatever critest writes there. The suite gets
    ``timeout`` seconds (ginkgo's own limit), the process a minute more.
    ginkgo shuffles the order of the top-level containers with a new seed
    each run; a fixed ``seed`` makes the order, and so any effect one spec has
    on another (an image spec removing the sandbox image), the same each run.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / "report.json"
    report.unlink(missing_ok=True)
    command = [
        *_command(critest, endpoint, timeout),
        f"-report-dir={report_dir}",
        f"-ginkgo.json-report={report}",
        "-ginkgo.v",
        "-ginkgo.flake-attempts=1",
        *([f"-ginkgo.seed={seed}"] if seed is not None else []),
        *extra_args,
    ]
    returncode, seconds = _run_logged(command, report_dir, timeout + 60, env)
    results = parse_report(report) if report.exists() else {}
    return CritestRun(command, returncode, seconds, report_dir, results)


def run_critest_benchmark(
    critest: str, endpoint: str, params: Path, out: Path, *, timeout: float = 1800.0
) -> tuple[int, float]:
    """``critest -benchmark`` with the parameters file ``params``; its exit status and seconds.

    ``out`` gets ``critest.log`` and one ``*_benchmark_data.json`` a benchmark.
    """
    out.mkdir(parents=True, exist_ok=True)
    command = [
        *_command(critest, endpoint, timeout),
        "-benchmark",
        f"-benchmarking-params-file={params}",
        f"-benchmarking-output-dir={out}",
    ]
    return _run_logged(command, out, timeout + 120)


def find_critest() -> str:
    """critest on the PATH, else where scripts/setup-critest.sh installs it."""
    return shutil.which("critest") or INSTALLED_CRITEST


def _command(critest: str, endpoint: str, timeout: float) -> list[str]:
    """What every run passes: the endpoint for both services, ginkgo's limit, plain output."""
    return [
        critest,
        f"-runtime-endpoint={endpoint}",
        f"-image-endpoint={endpoint}",
        "-ginkgo.no-color",
        f"-ginkgo.timeout={int(timeout)}s",
    ]


def _run_logged(
    command: list[str], directory: Path, timeout: float, env: Mapping[str, str] | None = None
) -> tuple[int, float]:
    """Run in ``directory`` with its output in ``critest.log`` there; exit status, seconds."""
    started = time.monotonic()
    with (directory / "critest.log").open("w") as log:
        log.write("# " + " ".join(command) + "\n")
        log.flush()
        # critest writes scratch files into its working directory
        process = subprocess.run(
            command,
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
    return process.returncode, time.monotonic() - started
