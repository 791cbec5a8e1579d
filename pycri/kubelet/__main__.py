"""``python -m pycri.kubelet``: the same as ``pycri-kubelet``."""

from pycri.kubelet.cli import main

main()
