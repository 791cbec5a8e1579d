"""The conformance tests of Version and Status."""

from __future__ import annotations

from pycri.client import CRIClient
from pycri.testing.conformance.base import ConformanceBase

__all__ = ["RuntimeStatusConformance"]


class RuntimeStatusConformance(ConformanceBase):
    """The runtime's identity and health."""

    def test_version(self, client: CRIClient) -> None:
        version = client.version()
        assert version.runtime_name == "pycri"
        assert version.runtime_api_version == "v1"
        assert version.runtime_version

    def test_status_reports_runtime_ready(self, client: CRIClient) -> None:
        conditions = {c.type: c for c in client.status().status.conditions}
        assert conditions["RuntimeReady"].status is True
        assert "NetworkReady" in conditions
