"""The dockershim -> containerd demo runs to the end on two fake handlers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_on_fake_handlers(tmp_path: Path) -> None:
    plot = tmp_path / "plot.svg"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "migration_demo.py"), "--fake",
         "--pods", "2", "--rounds", "2", "--plot", str(plot)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "moved web-1 to 'fake-b'" in result.stdout
    assert plot.read_text().startswith("<svg")
