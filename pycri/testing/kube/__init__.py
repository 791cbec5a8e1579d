"""A real one-node Kubernetes cluster whose kubelet runs pods through pycri (or containerd).

``python -m pycri.testing.kube --runtime docker`` brings one up and keeps it
until Ctrl-C; the integration tests share :class:`Cluster`. See
docs/kubernetes.md.
"""

from pycri.testing.kube.cluster import RUNTIMES, Cluster

__all__ = ["RUNTIMES", "Cluster"]
