"""The Docker shim: the CRI on Docker through the Docker SDK (dockershim, done again).

``pycri-server --shim docker`` serves it; see :mod:`pycri_shims.docker.shim`
for its options.
"""

from pycri_shims.docker.shim import DockerShim

__all__ = ["DockerShim"]
