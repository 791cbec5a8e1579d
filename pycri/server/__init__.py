"""The pycri gRPC server: ``CRIServer`` and the ``pycri-server`` command."""

from pycri.server.server import CRIServer, EndpointInUseError

__all__ = ["CRIServer", "EndpointInUseError"]
