"""The fake shim: an in-memory CRI runtime with simulated processes, for tests.

    from pycri.core import CRIRuntime
    from pycri_shims.fake import FakeShim

    fake = FakeShim()                      # pause and busybox preloaded
    runtime = CRIRuntime(fake)             # the CRI, in process
    fake.faults.fail_next("PullImage", grpc.StatusCode.UNAVAILABLE)
    fake.crash(container_id)               # OOMKilled, exit 137

Registered as the ``fake`` shim (``pycri-server --backend fake``).
"""

from pycri_shims.fake.faults import FaultInjector
from pycri_shims.fake.image_store import DEFAULT_PRELOAD, FakeImage, ImageConfig
from pycri_shims.fake.processes import CompletedProcess, SimulatedProcess, run
from pycri_shims.fake.sh.context import ProcessContext
from pycri_shims.fake.shim import FakeShim

__all__ = [
    "DEFAULT_PRELOAD",
    "CompletedProcess",
    "FakeImage",
    "FakeShim",
    "FaultInjector",
    "ImageConfig",
    "ProcessContext",
    "SimulatedProcess",
    "run",
]
