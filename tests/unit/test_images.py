from __future__ import annotations

import threading

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.images import (
    SharedPull,
    is_image_id,
    is_sandbox_image,
    normalize_reference,
    parse_reference,
)
from pycri.errors import CRIError, InvalidArgumentError, NotFoundError


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


# -- the sandbox image -----------------------------------------------------------


def test_is_sandbox_image_matches_tags_digests_and_ids() -> None:
    digest = "sha256:" + "cd" * 32
    image = cri.Image(
        id="sha256:" + "ab" * 32,
        repo_tags=["registry.k8s.io/pause:3.9"],
        repo_digests=[f"registry.k8s.io/pause@{digest}"],
    )
    assert is_sandbox_image(image, "registry.k8s.io/pause:3.9")
    assert is_sandbox_image(image, f"registry.k8s.io/pause@{digest}")
    assert is_sandbox_image(image, "sha256:" + "ab" * 32)
    assert is_sandbox_image(image, "ab" * 6)
    assert not is_sandbox_image(image, "registry.k8s.io/pause:3.10")
    assert not is_sandbox_image(image, "pause:3.9")  # docker.io/library/pause:3.9
    assert not is_sandbox_image(image, "cd" * 6)
    assert not is_sandbox_image(image, "Not A Ref")
    short = cri.Image(id="sha256:" + "ef" * 32, repo_tags=["docker.io/library/pause:3.9"])
    assert is_sandbox_image(short, "pause:3.9")


def test_shared_pull_pulls_once_for_concurrent_callers_and_shares_its_failure() -> None:
    calls: list[int] = []
    started = threading.Event()
    release = threading.Event()
    outcome: list[CRIError | None] = [NotFoundError("manifest unknown"), None]

    def pull() -> None:
        calls.append(1)
        started.set()
        release.wait(10)
        error = outcome[len(calls) - 1]
        if error is not None:
            raise error

    shared = SharedPull(pull)
    seen = shared.attempts
    errors: list[CRIError] = []

    def caller(seen: int) -> None:
        try:
            shared.pull(seen)
        except CRIError as err:
            errors.append(err)

    threads = [threading.Thread(target=caller, args=(seen,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    assert started.wait(10)
    # callers that read the count while the pull runs found the image missing too
    late = [threading.Thread(target=caller, args=(shared.attempts,)) for _ in range(2)]
    for thread in late:
        thread.start()
    threads += late
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert [type(e) for e in errors] == [NotFoundError] * 5
    assert len({id(e) for e in errors}) == 5  # each caller raises its own copy
    # a caller that saw the failed attempt tries again, and this time it works
    shared.pull(shared.attempts)
    assert len(calls) == 2
    shared.pull(seen)  # stale: the last attempt (a success) answers it
    assert len(calls) == 2
