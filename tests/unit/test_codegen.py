from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "codegen.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_services_have_every_upstream_rpc() -> None:
    from pycri.api import api_pb2 as cri

    runtime = cri.DESCRIPTOR.services_by_name["RuntimeService"]
    image = cri.DESCRIPTOR.services_by_name["ImageService"]
    assert cri.DESCRIPTOR.package == "runtime.v1"
    assert {"RunPodSandbox", "ExecSync", "GetContainerEvents", "RuntimeConfig"} <= {
        m.name for m in runtime.methods
    }
    assert {m.name for m in image.methods} >= {
        "ListImages",
        "ImageStatus",
        "PullImage",
        "RemoveImage",
        "ImageFsInfo",
    }
    # spot-check field numbers that real clients depend on
    fields = cri.ContainerStatus.DESCRIPTOR.fields_by_name
    assert (fields["exit_code"].number, fields["log_path"].number) == (7, 15)
    assert cri.PodSandboxConfig.DESCRIPTOR.fields_by_name["log_directory"].number == 3
