"""specedit: which containers need the runc wrapper, and what the wrapper does to a bundle."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.identity import process_groups
from pycri.core.security import container_security
from pycri.errors import InvalidArgumentError, UnavailableError
from pycri_shims.nerdctl import specedit


def _labels(**fields: Any) -> dict[str, str]:
    return specedit.spec_labels(container_security(cri.LinuxContainerSecurityContext(**fields)))


def test_only_non_default_paths_need_the_wrapper() -> None:
    assert _labels() == {}
    defaults = _labels(
        masked_paths=sorted(specedit.DEFAULT_MASKED),
        readonly_paths=sorted(specedit.DEFAULT_READONLY),
    )
    assert defaults == {}
    assert _labels(masked_paths=["/bin/ls"]) == {"masked-paths": '["/bin/ls"]'}
    assert _labels(privileged=True) == {"masked-paths": "[]", "readonly-paths": "[]"}
    with pytest.raises(InvalidArgumentError, match="absolute"):
        _labels(readonly_paths=["tmp"])
    with pytest.raises(InvalidArgumentError, match="bytes"):
        _labels(masked_paths=[f"/p/{i:04}" for i in range(400)])


def _fake_runc(tmp_path: Path) -> Path:
    """A 'runc' that records its arguments, so the wrapper's hand-over is visible."""
    runc = tmp_path / "runc"
    runc.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "argv"}\n')
    runc.chmod(0o700)
    return runc


def test_the_wrapper_writes_the_paths_at_create_and_hands_over(tmp_path: Path) -> None:
    wrapper = specedit.install_wrapper(str(tmp_path / "state"), runc=str(_fake_runc(tmp_path)))
    assert stat.S_IMODE(os.stat(wrapper).st_mode) == 0o700
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec = {
        "annotations": {"io.pycri.masked-paths": '["/bin/ls"]', "io.pycri.readonly-paths": "[]"},
        "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"], "x": 1},
    }
    (bundle / "config.json").write_text(json.dumps(spec))
    args = ["--root", "/r", "--log-format", "json", "create", "--bundle", str(bundle), "id1"]
    subprocess.run([wrapper, *args], check=True, timeout=30)
    written = json.loads((bundle / "config.json").read_text())
    assert written["linux"] == {"maskedPaths": ["/bin/ls"], "readonlyPaths": [], "x": 1}
    assert (tmp_path / "argv").read_text().split() == args

    # any other call goes to runc untouched, and a spec without pycri's labels stays as it was
    plain = {"linux": {"maskedPaths": ["/proc/kcore"]}}
    (bundle / "config.json").write_text(json.dumps(plain))
    subprocess.run([wrapper, "create", f"--bundle={bundle}", "id2"], check=True, timeout=30)
    assert json.loads((bundle / "config.json").read_text()) == plain
    subprocess.run([wrapper, "delete", "--force", "id2"], check=True, timeout=30)
    assert (tmp_path / "argv").read_text().split() == ["delete", "--force", "id2"]


def test_wrappers_of_other_versions_are_kept(tmp_path: Path) -> None:
    """A container keeps calling the wrapper it was created with: another one never replaces it."""
    state = str(tmp_path / "state")
    first = specedit.install_wrapper(state, runc=str(_fake_runc(tmp_path)))
    assert specedit.install_wrapper(state, runc=str(_fake_runc(tmp_path))) == first
    other_runc = tmp_path / "other"
    other_runc.mkdir()
    second = specedit.install_wrapper(state, runc=str(_fake_runc(other_runc)))
    assert second != first
    assert str(tmp_path / "runc") in Path(first).read_text()
    assert str(other_runc / "runc") in Path(second).read_text()


def test_the_wrapper_directory_must_be_ours_alone(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    with pytest.raises(UnavailableError, match="alone"):
        specedit.install_wrapper(str(loose), runc=str(_fake_runc(tmp_path)))


def test_strict_groups_need_the_wrapper() -> None:
    assert _labels(supplemental_groups=[5]) == {}  # Merge: nerdctl's own
    strict = _labels(supplemental_groups=[1234, 5], supplemental_groups_policy=cri.Strict)
    assert strict == {specedit.STRICT_GROUPS: "[1234,5]"}
    assert _labels(supplemental_groups_policy=cri.Strict) == {specedit.STRICT_GROUPS: "[]"}


@pytest.mark.parametrize(("gid", "supplemental"), [(1000, [1234]), (0, []), (7, [7, 8, 8])])
def test_the_wrapper_gives_strict_groups_at_create_and_exec(
    tmp_path: Path, gid: int, supplemental: list[int]
) -> None:
    wrapper = specedit.install_wrapper(str(tmp_path / "state"), runc=str(_fake_runc(tmp_path)))
    expected = process_groups(cri.Strict, gid, supplemental)
    note = {f"io.pycri.{specedit.STRICT_GROUPS}": json.dumps(supplemental)}
    # nerdctl gave the image's memberships too (50000)
    user = {"uid": 1000, "gid": gid, "additionalGids": [gid, 50000, *supplemental]}
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(
        json.dumps({"annotations": note, "process": {"user": user}})
    )
    subprocess.run([wrapper, "--root", "/r", "create", "--bundle", str(bundle), "c"], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["user"]["additionalGids"] == expected
    assert "linux" not in spec

    # exec: containerd's stored process (nerdctl's groups again), runc run in the bundle
    process = tmp_path / "runc-process1"
    process.write_text(json.dumps({"user": user, "args": ["id", "-G"]}))
    args = ["--root", "/r", "exec", "--process", str(process), "--detach", "c"]
    subprocess.run([wrapper, *args], check=True, cwd=bundle)
    assert json.loads(process.read_text()) == {
        "user": {**user, "additionalGids": expected},
        "args": ["id", "-G"],
    }
    assert (tmp_path / "argv").read_text().split() == args

    # a container without the annotation: its exec's process is left as it was
    (bundle / "config.json").write_text(json.dumps({"process": {"user": user}}))
    process.write_text(json.dumps({"user": user}))
    subprocess.run([wrapper, "exec", f"--process={process}", "c"], check=True, cwd=bundle)
    assert json.loads(process.read_text()) == {"user": user}
