"""Image volumes without a daemon: core's rules, the docker shim's safe extraction, labels."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.engine import EngineLabels
from pycri.core.image_volumes import (
    check_sub_path,
    decode_image_mounts,
    encode_image_mounts,
    find_image_mounts,
    sub_path_source,
    validate_image_mounts,
    with_host_paths,
)
from pycri.errors import InvalidArgumentError, NotFoundError
from pycri_shims.docker.image_volumes import extract_tar, reported_mounts
from pycri_shims.nerdctl import args as nerdctl_args
from pycri_shims.nerdctl.convert import _mounts as nerdctl_mounts

IMAGE_ID = "sha256:" + "ab" * 32


def _config(*mounts: cri.Mount) -> cri.ContainerConfig:
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="app"),
        image=cri.ImageSpec(image="busybox"),
        mounts=list(mounts),
    )


def _image_mount(**fields: object) -> cri.Mount:
    values: dict[str, object] = {
        "container_path": "/mnt/v",
        "readonly": True,
        "image": cri.ImageSpec(image="docker.io/library/busybox:latest"),
    }
    values.update(fields)
    return cri.Mount(**values)  # type: ignore[arg-type]


# -- core rules ---------------------------------------------------------------------


@pytest.mark.parametrize("sub_path", ["", "etc", "usr/bin", "a.b", "..hidden", "x/...y"])
def test_sub_path_accepted(sub_path: str) -> None:
    assert check_sub_path(sub_path, "f") == sub_path


@pytest.mark.parametrize(
    ("sub_path", "message"),
    [
        ("/etc", "relative"),
        ("../etc", r"\.\."),
        ("etc/..", r"\.\."),
        ("a/../b", r"\.\."),
        ("./etc", "normalised"),
        ("etc/", "normalised"),
        ("a//b", "normalised"),
        (".", "normalised"),
        ("e\x00tc", "NUL"),
    ],
)
def test_sub_path_refused(sub_path: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        check_sub_path(sub_path, "config.mounts[0].image_sub_path")


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        (_image_mount(readonly=False), "read-only; set readonly=true"),
        (_image_mount(host_path="/srv"), "both an image and host_path"),
        (_image_mount(image=cri.ImageSpec()), r"image\.image is required"),
        (_image_mount(image=cri.ImageSpec(image="Not A Ref!")), r"image\.image"),
        (_image_mount(image_sub_path="../x"), r"image_sub_path '\.\./x'"),
        (cri.Mount(container_path="/m", host_path="/srv", image_sub_path="etc"), "without"),
    ],
)
def test_static_rules(mount: cri.Mount, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        validate_image_mounts(_config(cri.Mount(container_path="/h", host_path="/h"), mount))


def test_valid_image_mounts_pass() -> None:
    validate_image_mounts(_config(_image_mount(), _image_mount(image_sub_path="etc")))
    validate_image_mounts(_config(_image_mount(image=cri.ImageSpec(image=IMAGE_ID))))


class _Store:
    def __init__(self, *images: cri.Image) -> None:
        self.images = images
        self.asked: list[str] = []

    def image_status(self, image: str) -> cri.Image | None:
        self.asked.append(image)
        return next((i for i in self.images if image in (i.id, *i.repo_tags)), None)


def test_images_are_found_not_pulled() -> None:
    image = cri.Image(id=IMAGE_ID, repo_tags=["docker.io/library/busybox:latest"])
    store = _Store(image)
    config = _config(
        cri.Mount(container_path="/h", host_path="/h"),
        _image_mount(image=cri.ImageSpec(image="busybox"), image_sub_path="etc"),
    )
    [found] = find_image_mounts(store, config)
    assert store.asked == ["docker.io/library/busybox:latest"]  # normalised, as ImageStatus
    assert (found.index, found.image, found.image_ref, found.sub_path) == (
        1,
        "busybox",
        IMAGE_ID,
        "etc",
    )
    assert found.repo_tags == ("docker.io/library/busybox:latest",)
    with pytest.raises(NotFoundError, match=r"mounts\[0\].*pull it first"):
        find_image_mounts(_Store(), _config(_image_mount()))


def test_with_host_paths_leaves_the_request_alone() -> None:
    config = _config(_image_mount(image_sub_path="etc"))
    [found] = find_image_mounts(
        _Store(cri.Image(id=IMAGE_ID, repo_tags=["x"])),
        _config(_image_mount(image=cri.ImageSpec(image=IMAGE_ID))),
    )
    engine = with_host_paths(config, [(found, "/var/tree/etc")])
    assert engine.mounts[0] == cri.Mount(
        container_path="/mnt/v", host_path="/var/tree/etc", readonly=True
    )
    assert config.mounts[0].image_sub_path == "etc"  # a copy was changed


def test_sub_path_source(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root")
    (tmp_path / "lib").symlink_to("etc")  # relative, inside
    (tmp_path / "host").symlink_to("/etc")  # absolute: the host's /etc on the host
    (tmp_path / "up").symlink_to("../..")
    root = str(tmp_path)
    assert sub_path_source(root, "", "w") == root
    assert sub_path_source(root, "etc", "w") == f"{root}/etc"
    with pytest.raises(InvalidArgumentError, match="not a directory"):
        sub_path_source(root, "etc/passwd", "w")  # as containerd: directories only
    assert sub_path_source(root, "lib", "w") == f"{root}/etc"
    for escaping in ("host", "up", "up/etc"):
        with pytest.raises(InvalidArgumentError, match="outside the image"):
            sub_path_source(root, escaping, "w")
    with pytest.raises(InvalidArgumentError, match="does not exist in the image"):
        sub_path_source(root, "not-existing", "w")


def test_label_round_trip() -> None:
    [found] = find_image_mounts(
        _Store(cri.Image(id=IMAGE_ID, repo_tags=["docker.io/library/busybox:latest"])),
        _config(_image_mount(image_sub_path="etc")),
    )
    reported = decode_image_mounts(encode_image_mounts([found]))
    assert reported == {
        "/mnt/v": cri.Mount(
            container_path="/mnt/v",
            readonly=True,
            image=cri.ImageSpec(image="docker.io/library/busybox:latest", image_ref=IMAGE_ID),
            image_sub_path="etc",
        )
    }
    assert decode_image_mounts("") == {}
    assert decode_image_mounts("{not json") == {}
    # docker: Docker's bind at that path is replaced, other binds stay
    bind = cri.Mount(container_path="/mnt/v", host_path="/var/lib/pycri/docker/x", readonly=True)
    other = cri.Mount(container_path="/data", host_path="/srv")
    labels = {"image-mounts": encode_image_mounts([found])}
    assert reported_mounts(labels, [bind, other]) == [reported["/mnt/v"], other]


def test_nerdctl_mounts_label_keeps_the_image() -> None:
    mount = _image_mount(image_sub_path="etc")
    mount.image.image_ref = IMAGE_ID
    plain = cri.Mount(container_path="/data", host_path="/srv")
    label = nerdctl_args.mounts_label([mount, plain])
    assert "image" not in json.loads(label)[1]  # host-path mounts' label is unchanged
    meta = EngineLabels(kind="container", metadata_json="{}", extra={"mounts": label})
    assert nerdctl_mounts(meta) == [mount, plain]


# -- the docker shim's extraction ---------------------------------------------------


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> list[bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    raw = buffer.getvalue()
    return [raw[i : i + 700] for i in range(0, len(raw), 700)]  # chunks, as Docker streams


def _entry(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    info.uid = info.gid = 1234
    return info


def test_extract_keeps_files_modes_links_and_owners(tmp_path: Path) -> None:
    extract_tar(
        _tar(
            (_entry("bin", tarfile.DIRTYPE, 0o755), b""),
            (_entry("bin/busybox", mode=0o755), b"\x7fELF"),
            (_entry("bin/sh", tarfile.SYMTYPE, 0o777, "busybox"), b""),
            (_entry("bin/ls", tarfile.LNKTYPE, 0o755, "bin/busybox"), b""),
            (_entry("etc/mtab", tarfile.SYMTYPE, 0o777, "/proc/mounts"), b""),
            (_entry("/etc/passwd"), b"root:x:0:0\n"),  # an absolute name lands inside
            (_entry("bin/su", mode=0o4755), b"su"),
            (_entry("dev/null", tarfile.CHRTYPE, 0o666), b""),
        ),
        str(tmp_path),
    )
    busybox = tmp_path / "bin" / "busybox"
    assert busybox.read_bytes() == b"\x7fELF"
    assert os.access(busybox, os.X_OK)
    assert busybox.stat().st_mode & 0o777 == 0o755
    assert os.readlink(tmp_path / "bin" / "sh") == "busybox"
    assert (tmp_path / "bin" / "ls").stat().st_ino == busybox.stat().st_ino
    assert os.readlink(tmp_path / "etc" / "mtab") == "/proc/mounts"  # resolved in the container
    assert (tmp_path / "etc" / "passwd").read_text() == "root:x:0:0\n"
    assert not (tmp_path / "bin" / "su").stat().st_mode & stat.S_ISUID
    assert not (tmp_path / "dev" / "null").exists()  # no device nodes
    if os.geteuid() == 0:
        assert busybox.stat().st_uid == 1234  # the image's owner, by number


@pytest.mark.parametrize(
    "members",
    [
        [(_entry("../escaped"), b"x")],
        [(_entry("a/../../escaped"), b"x")],
        [(_entry("out", tarfile.SYMTYPE, 0o777, ".."), b""), (_entry("out/escaped"), b"x")],
        [(_entry("hl", tarfile.LNKTYPE, 0o644, "../escaped-target"), b"")],
        [(_entry("hl", tarfile.LNKTYPE, 0o644, "/etc/hostname"), b"")],
    ],
    ids=["dotdot", "nested-dotdot", "through-symlink", "hardlink-up", "hardlink-absolute"],
)
def test_extract_refuses_what_escapes(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    dest = tmp_path / "tree"
    dest.mkdir()
    (tmp_path / "escaped-target").write_text("host file")
    with pytest.raises(tarfile.TarError):
        extract_tar(_tar(*members), str(dest))
    assert not (tmp_path / "escaped").exists()
    assert not (dest / "hl").exists()
