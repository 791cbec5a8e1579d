"""A short run of benchmarks/bench_load.py on every registered engine shim: no errors, no leaks.

The ten-minute version is ``python benchmarks/bench_load.py --shim NAME``
(figures in RELIABILITY.md); this one keeps the same code path honest in CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pycri.testing import engine_shims, require_shim

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shim", engine_shims())
def test_short_load_run(shim: str) -> None:
    require_shim(shim)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_load.py"), "--shim", shim,
         "--clients", "5", "--lifecycle-seconds", "5", "--pods", "10",
         "--containers-per-pod", "3", "--soak-seconds", "5", "--setup-workers", "4"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "lifecycles completed: 0" not in output
    assert output.count("errors: 0") == 2, output
    assert "left behind after clean-up: 0 pods and containers" in output
