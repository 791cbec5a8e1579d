"""pycrictl logs: the command over the fake runtime (the reader is tested in test_logread.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from pycri.cli.logs import previous_log_path
from pycri.cli.main import cli
from pycri.testing import serve_fake


def test_previous_log_path() -> None:
    assert previous_log_path("/var/log/pods/x/app/2.log", 2) == "/var/log/pods/x/app/1.log"


def test_logs_command_on_the_fake(tmp_path: Path) -> None:
    pod_cfg = tmp_path / "pod.json"
    meta = {"name": "p", "namespace": "default", "uid": "u1"}
    pod_cfg.write_text(json.dumps({"metadata": meta, "log_directory": str(tmp_path / "logs")}))
    ctr_cfg = tmp_path / "ctr.json"
    ctr_cfg.write_text(
        json.dumps(
            {
                "metadata": {"name": "talk"},
                "image": {"image": "busybox"},
                "command": ["sh", "-c", "echo hello; echo oops >&2; echo bye"],
                "log_path": "talk.log",
            }
        )
    )
    with serve_fake() as fake:
        runner = CliRunner()
        base = ["-c", os.devnull, "-r", fake.address]

        def run(*args: str, code: int = 0) -> tuple[str, str]:
            result = runner.invoke(cli, [*base, *args], catch_exceptions=False)
            assert result.exit_code == code, result.stderr
            return result.stdout, result.stderr

        pod = run("runp", str(pod_cfg))[0].strip()
        try:
            ctr = run("create", pod, str(ctr_cfg), str(pod_cfg))[0].strip()
            run("start", ctr)
            # -f ends by itself once the container has exited
            out, err = run("logs", "-f", ctr)
            assert out == "hello\nbye\n"
            assert err == "oops\n"
            assert run("logs", "--tail", "1", ctr)[0] == "bye\n"
            assert run("logs", "-s", "stdout", ctr) == ("hello\nbye\n", "")
            assert run("logs", "-t", "--tail", "1", ctr)[0].endswith("Z bye\n")
            assert "previous terminated container" in run("logs", "-p", ctr, code=1)[1]
            assert (
                "mutually exclusive" in run("logs", "--tail", "1", "-s", "stdout", ctr, code=2)[1]
            )
            assert "invalid --since" in run("logs", "--since", "soon", ctr, code=2)[1]
        finally:
            run("rmp", "-f", pod)
