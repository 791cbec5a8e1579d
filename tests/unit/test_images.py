from __future__ import annotations

import pytest

from pycri.core.images import is_image_id, normalize_reference, parse_reference
from pycri.errors import InvalidArgumentError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("user/app:v1", "docker.io/user/app:v1"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        ("localhost/app", "localhost/app:latest"),
        ("127.0.0.1:5000/pycri/busybox", "127.0.0.1:5000/pycri/busybox:latest"),
        ("quay.io/a/b/c:tag", "quay.io/a/b/c:tag"),
        (
            "busybox:1.36@sha256:" + "a" * 64,
            "docker.io/library/busybox@sha256:" + "a" * 64,
        ),
    ],
)
def test_normalize(given: str, expected: str) -> None:
    assert normalize_reference(given) == expected


@pytest.mark.parametrize("bad", ["", " busybox", "Busybox", "a b", "app:", "app@sha256:12", "-x"])
def test_invalid_references(bad: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_reference(bad)


def test_ids_pass_through() -> None:
    image_id = "sha256:" + "b" * 64
    assert is_image_id(image_id)
    assert normalize_reference(image_id) == image_id
    assert is_image_id("b" * 12)
    assert not is_image_id("busybox")
