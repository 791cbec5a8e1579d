"""pycri: the Kubernetes Container Runtime Interface (CRI v1) from Python."""

__version__ = "0.1.0"
