"""nerdctl 1.7 fails a command when an unrelated container vanishes under it: the runner retries.

The race (containerd/nerdctl#3167) shows under load; here a stand-in
nerdctl fails the first calls with exactly nerdctl's message, so each rule
is checked deterministically.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pycri.errors import CRIError, NotFoundError
from pycri_shims.nerdctl.options import NerdctlOptions
from pycri_shims.nerdctl.runner import BYSTANDER_RETRIES, NerdctlRunner, bystander_vanished
from pycri_shims.nerdctl.shim import NerdctlShim

GONE = "e04f85977175fbb90fa8472289fcb0af9c02f184e5c6d9cc3b9577daa3bbe335"
POD = "3455876a35c0f05684aed1436a966a77be69084be873415e5d923b87bcb187f1"


def stand_in(tmp_path: Path, failures: int, missing: str = GONE) -> tuple[NerdctlRunner, Path]:
    """A nerdctl that fails ``failures`` times as 1.7.7 does, then prints ``{}``."""
    calls = tmp_path / "calls"
    script = tmp_path / "nerdctl"
    message = f'container \\\\"{missing}\\\\" in namespace \\\\"pycri\\\\": not found'
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f'if [ "$1" != rm ] && [ $(grep -vc "^rm " {calls}) -le {failures} ]; then\n'
        f'  echo \'time="2026-11-27T15:23:37Z" level=fatal msg="{message}"\' >&2\n'
        "  exit 1\n"
        "fi\n"
        "echo '{}'\n"
    )
    script.chmod(0o755)
    return NerdctlRunner(str(script), [], timeout=10), calls


def test_a_bystander_is_recognised_by_its_id_not_being_in_the_command() -> None:
    err = NotFoundError(f'container "{GONE}" in namespace "pycri": not found')
    assert bystander_vanished(["ps", "-a"], err)
    assert not bystander_vanished(["create", "--net", f"container:{GONE}", "busybox"], err)
    assert not bystander_vanished(["ps"], NotFoundError("no such container: abc"))


def test_a_list_is_retried_until_it_succeeds(tmp_path: Path) -> None:
    runner, calls = stand_in(tmp_path, failures=2)
    assert runner.run_despite_bystanders(["ps", "-a"]).json() == {}
    assert calls.read_text().splitlines() == ["ps -a"] * 3


def test_a_create_is_cleaned_up_before_each_retry(tmp_path: Path) -> None:
    runner, calls = stand_in(tmp_path, failures=1)

    def clean() -> None:
        runner.run(["rm", "-f", "k8s_app"], check=False)

    runner.run_despite_bystanders(["create", "--name", "k8s_app", "busybox"], before_retry=clean)
    assert calls.read_text().splitlines() == [
        "create --name k8s_app busybox",
        "rm -f k8s_app",
        "create --name k8s_app busybox",
    ]


def test_the_container_the_command_names_is_a_real_not_found(tmp_path: Path) -> None:
    runner, calls = stand_in(tmp_path, failures=1, missing=POD)
    with pytest.raises(NotFoundError):
        runner.run_despite_bystanders(["create", "--net", f"container:{POD}", "busybox"])
    assert len(calls.read_text().splitlines()) == 1


def test_retries_are_bounded(tmp_path: Path) -> None:
    runner, calls = stand_in(tmp_path, failures=100)
    with pytest.raises(CRIError, match="not found"):
        runner.run_despite_bystanders(["ps"])
    assert len(calls.read_text().splitlines()) == BYSTANDER_RETRIES + 1


def test_a_row_without_an_id_is_not_listed(tmp_path: Path) -> None:
    # under load, ps printed a container being removed as a row with an empty id; the
    # stats call that followed ran `container inspect ""`, which nerdctl refused
    script = tmp_path / "nerdctl"
    row = '{"ID":"%s","Labels":{"io.kubernetes.docker.type":"container"}}'
    script.write_text(f"#!/bin/sh\necho '{row % POD}'\necho '{row % ''}'\n")
    script.chmod(0o755)
    shim = NerdctlShim(NerdctlOptions(nerdctl=str(script)), recover_logs=False)
    try:
        assert [row["ID"] for row in shim.lookup.ps(None)] == [POD]
    finally:
        shim.close()
