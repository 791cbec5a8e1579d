"""The gRPC surface under random, malformed, oversized and boundary messages (fake shim)."""

from __future__ import annotations

import pytest

from pycri.api import api_pb2 as cri
from pycri.errors import InvalidArgumentError
from pycri.testing import FakeEndpoint
from pycri.testing.fuzz import cleanup, fuzz_endpoint


def test_fuzz_every_rpc(fake_endpoint: FakeEndpoint) -> None:
    client = fake_endpoint.client
    keep = {image.id for image in client.list_images().images}
    report = fuzz_endpoint(fake_endpoint.address, iterations=25, seed=7)
    assert report.crashes == []
    assert report.alive
    assert report.sent >= 25 * 40
    # the codes a fuzzed request may get; anything else is a new behaviour to document
    assert set(report.codes) <= {
        "OK", "INVALID_ARGUMENT", "NOT_FOUND", "UNIMPLEMENTED", "FAILED_PRECONDITION",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "DEADLINE_EXCEEDED",
    }  # fmt: skip
    assert set(report.garbage_codes) == {"INTERNAL"}  # grpcio: cannot deserialize request
    cleanup(client, keep)
    assert not client.list_pod_sandbox().items
    assert not client.list_containers().containers
    assert {image.id for image in client.list_images().images} == keep


def test_huge_error_details_are_cut_to_fit_a_header(fake_endpoint: FakeEndpoint) -> None:
    huge = "x" * 100_000  # the fake quotes a bad pod CIDR back in its message
    request = cri.UpdateRuntimeConfigRequest(
        runtime_config=cri.RuntimeConfig(network_config=cri.NetworkConfig(pod_cidr=huge))
    )
    with pytest.raises(InvalidArgumentError) as info:
        fake_endpoint.client.update_runtime_config(request)
    assert len(info.value.message) < 3000
    assert "more characters" in info.value.message
