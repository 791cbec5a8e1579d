"""Pull progress reaches gRPC clients through pycri.v1.PullProgress/Watch."""

from __future__ import annotations

import threading
import time

import pytest

from pycri.api import api_pb2 as cri
from pycri.errors import InvalidArgumentError
from pycri.shim import PullProgress
from pycri.testing import serve_fake


def test_a_client_sees_the_steps_of_a_pull() -> None:
    with serve_fake(pull_delay=0.2) as endpoint:
        client = endpoint.client
        steps: list[PullProgress] = []
        watching = client.watch_pull_progress("nginx:1.25", timeout=10)

        def watch() -> None:
            for step in watching:
                steps.append(step)
                if step.status == "Pull complete":
                    return

        watcher = threading.Thread(target=watch)
        watcher.start()
        time.sleep(0.2)  # the stream subscribes before the pull starts
        client.pull_image(cri.PullImageRequest(image=cri.ImageSpec(image="nginx:1.25")))
        watcher.join(10)
        assert [s.status for s in steps][-1] == "Pull complete"
        assert {s.image for s in steps} == {"docker.io/library/nginx:1.25"}
        downloading = [s for s in steps if s.status == "Downloading"]
        assert downloading
        assert downloading[-1].current_bytes == downloading[-1].total_bytes > 0


def test_a_bad_filter_is_invalid_argument() -> None:
    with serve_fake() as endpoint:
        steps = endpoint.client.watch_pull_progress("NOT A REF", timeout=5)
        with pytest.raises(InvalidArgumentError):
            next(steps)
