"""The fuzzer against every engine shim (by registration): no crash, no leak."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pycri.testing import engine_shims, require_shim

pytestmark = pytest.mark.real
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shim", engine_shims())
def test_fuzz_engine_shim(shim: str) -> None:
    require_shim(shim)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz_grpc.py"), "--shim", shim,
         "--iterations", "10", "--seed", "11"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "crashes: 0" in result.stdout
    assert "leaked after cleanup: 0 pods, 0 containers, 0 images" in result.stdout
    assert "images that were there before and are gone: 0" in result.stdout
