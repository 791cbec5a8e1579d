"""ShimConformance: every area's conformance tests together, for a shim's tests to subclass."""

from __future__ import annotations

from pycri.testing.conformance.containers import ContainerConformance
from pycri.testing.conformance.image_volumes import ImageVolumeConformance
from pycri.testing.conformance.images import ImageConformance
from pycri.testing.conformance.metrics import MetricsConformance
from pycri.testing.conformance.recursive_readonly import RecursiveReadOnlyConformance
from pycri.testing.conformance.runtime_status import RuntimeStatusConformance
from pycri.testing.conformance.sandbox_resources import SandboxResourcesConformance
from pycri.testing.conformance.sandboxes import SandboxConformance
from pycri.testing.conformance.stats import StatsConformance

__all__ = ["ShimConformance"]


# pytest runs the tests of the last base first: listed backwards, they run in the
# suite's order, status and sandboxes first
class ShimConformance(
    RecursiveReadOnlyConformance,
    ImageVolumeConformance,
    ImageConformance,
    MetricsConformance,
    SandboxResourcesConformance,
    StatsConformance,
    ContainerConformance,
    SandboxConformance,
    RuntimeStatusConformance,
):
    """Subclass with a ``shim`` fixture yielding the shim under test."""
