"""pycri's staging of recursive read-only mounts, with real mounts (root only)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.rro_staging import (
    RROStaging,
    mount_setattr_available,
    restore_mounts,
    staged_label,
    with_mounts,
)
from pycri.errors import AlreadyExistsError
from pycri.testing import require_real
from pycri.testing.submounts import TreeWithSubmount, tree_with_submount


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    require_real(os.geteuid() == 0, "mounting needs root")


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[TreeWithSubmount]:
    with tree_with_submount(tmp_path / "host") as tree:
        yield tree


@pytest.fixture
def staging(tmp_path: Path) -> RROStaging:
    return RROStaging(str(tmp_path / "state" / "rro"))


def _rro(path: Path | str, container_path: str = "/data") -> cri.Mount:
    return cri.Mount(
        host_path=str(path), container_path=container_path, readonly=True, recursive_read_only=True
    )


def _read_only(path: Path) -> bool:
    try:
        (path / "probe").write_text("x")
    except OSError as err:
        if err.errno != errno.EROFS:
            raise
        return True
    (path / "probe").unlink()
    return False


def test_probe_here() -> None:
    assert mount_setattr_available("/tmp") is None


def test_every_level_is_read_only_and_release_leaves_nothing(
    staging: RROStaging, tree: TreeWithSubmount
) -> None:
    plain = cri.Mount(host_path="/etc", container_path="/etc-host", readonly=True)
    with staging.creating("k8s_c_p_ns_u_0", [plain, _rro(tree.path)]) as given:
        assert given[0] == plain  # only recursive read-only mounts are staged
        staged = Path(given[1].host_path)
        assert staged.parent == staging.root / "k8s_c_p_ns_u_0"
        assert given[1].readonly
        assert not given[1].recursive_read_only
    assert _read_only(staged)
    assert _read_only(staged / "sub")
    assert tree.copies() == 1
    assert not _read_only(tree.path)  # the host's own tree is untouched
    assert not _read_only(tree.sub)
    assert staging.staged() == ["k8s_c_p_ns_u_0"]
    staging.release("k8s_c_p_ns_u_0")
    assert tree.copies() == 0
    assert staging.staged() == []
    staging.release("k8s_c_p_ns_u_0")  # idempotent


def test_a_failed_create_is_undone(staging: RROStaging, tree: TreeWithSubmount) -> None:
    seen: list[int] = []

    def create() -> None:
        with staging.creating("c", [_rro(tree.path)]):
            seen.append(tree.copies())
            raise RuntimeError("the engine refused")

    with pytest.raises(RuntimeError):
        create()
    assert seen == [1]
    assert tree.copies() == 0
    assert staging.staged() == []


def test_a_taken_name_keeps_its_staging(staging: RROStaging, tree: TreeWithSubmount) -> None:
    with staging.creating("c", [_rro(tree.path)]):
        pass
    with pytest.raises(AlreadyExistsError), staging.creating("c", [_rro(tree.path)]):
        pass
    assert tree.copies() == 1
    staging.release("c")


def test_sweep_releases_what_no_created_container_owns(
    staging: RROStaging, tree: TreeWithSubmount
) -> None:
    for name in ("kept", "orphan"):
        with staging.creating(name, [_rro(tree.path)]):
            pass
    assert staging.sweep(lambda: {"kept", "unrelated"}) == ["orphan"]
    assert staging.staged() == ["kept"]
    assert tree.copies() == 1
    assert staging.sweep(set) == ["kept"]
    assert tree.copies() == 0


def test_missing_host_path_and_single_files(staging: RROStaging, tmp_path: Path) -> None:
    missing = tmp_path / "made" / "here"
    single = tmp_path / "file.conf"
    single.write_text("setting\n")
    with staging.creating("c", [_rro(missing, "/a"), _rro(single, "/b")]) as given:
        pass
    assert missing.is_dir()  # created as a directory, as for every bind
    assert Path(given[1].host_path).read_text() == "setting\n"
    with pytest.raises(OSError, match="Read-only"):
        Path(given[1].host_path).write_text("changed")
    staging.release("c")
    assert staging.staged() == []


def test_status_reports_the_requested_mounts() -> None:
    requested = [_rro("/srv/data"), cri.Mount(host_path="/logs", container_path="/logs")]
    given = [_rro("/run/pycri/x/rro/c/0"), requested[1]]
    given[0].recursive_read_only = False
    label = staged_label(requested, given)
    engine_view = [
        cri.Mount(host_path="/run/pycri/x/rro/c/0", container_path="/data", readonly=True),
        cri.Mount(host_path="/logs", container_path="/logs"),
    ]
    assert restore_mounts(engine_view, label) == requested
    assert staged_label(requested[1:], given[1:]) == ""
    config = cri.ContainerConfig(mounts=requested)
    assert with_mounts(config, requested) is config
    assert list(with_mounts(config, given).mounts) == given


def test_nothing_staged_propagates_from_a_shared_mount(tmp_path: Path) -> None:
    """A systemd host's / is shared: the staging root becomes a private mount point.

    Run in a mount namespace of its own (unshare), whose / is made shared
    there: nothing of it reaches this test's namespace.
    """
    require_real(shutil.which("unshare") is not None, "unshare (util-linux) is not installed")
    host = tmp_path / "host"
    host.mkdir()
    script = f"""
import subprocess
from pycri.api import api_pb2 as cri
from pycri.core.rro_staging import RROStaging
subprocess.run(["mount", "--make-rshared", "/"], check=True)
mount = cri.Mount(host_path={str(host)!r}, container_path="/d", readonly=True,
                  recursive_read_only=True)
with RROStaging({str(tmp_path / "state")!r}).creating("c", [mount]):
    pass
print(open("/proc/self/mountinfo").read())
"""
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "unchanged", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    staged = [line for line in out.splitlines() if f" {tmp_path}/state" in line]
    assert len(staged) == 2, staged  # the root's self-bind, and the staging on it
    assert all("shared:" not in line.partition(" - ")[0] for line in staged), staged


def test_names_longer_than_a_file_name(staging: RROStaging, tree: TreeWithSubmount) -> None:
    """Docker names of Kubernetes pods go past 255 characters: the dir name is hashed."""
    long_name = "k8s_app_" + "p" * 253 + "_kube-system_" + "u" * 36 + "_0"
    other = long_name[:-1] + "1"
    with staging.creating(long_name, [_rro(tree.path)]) as given:
        pass
    assert len(Path(given[0].host_path).parent.name) < 255
    assert staging.sweep(lambda: {long_name}) == []  # owned: kept
    assert tree.copies() == 1
    assert len(staging.sweep(lambda: {other})) == 1
    assert tree.copies() == 0
    assert staging.staged() == []
