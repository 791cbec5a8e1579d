"""The shim conformance suite: CRI behaviour every pycri shim must show.

One module per area (``sandboxes``, ``containers``, ``stats``, ``metrics``,
``sandbox_resources``, ``images``, ``image_volumes``, ``recursive_readonly``,
``runtime_status``); :class:`ShimConformance` (``suite``) runs them all.

A shim's tests reuse it by subclassing and providing a ``shim`` fixture::

    from pycri.testing.conformance import ConformanceConfig, ShimConformance

    class TestMyShim(ShimConformance):
        @pytest.fixture
        def shim(self):
            shim = MyShim()
            yield shim
            shim.close()

Override ``conformance`` to name the images your runtime has. Every test
runs end to end through a real ``CRIServer`` on a unix socket and the
typed ``CRIClient``, and removes every pod it created.
"""

from pycri.testing.conformance.config import REQUIRED_METRICS, ConformanceConfig
from pycri.testing.conformance.pods import PodFactory, wait_for
from pycri.testing.conformance.suite import ShimConformance

__all__ = [
    "REQUIRED_METRICS",
    "ConformanceConfig",
    "PodFactory",
    "ShimConformance",
    "wait_for",
]
