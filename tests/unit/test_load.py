"""A short run of benchmarks/bench_load.py: concurrent lifecycles and a relist soak, no errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_load_run_on_the_fake() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_load.py"), "--clients", "10",
         "--lifecycle-seconds", "2", "--pods", "20", "--soak-seconds", "3"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "errors: 0" in result.stdout
