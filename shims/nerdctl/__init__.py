"""The containerd shim: the CRI on containerd, driving the nerdctl CLI.

    pycri-server --shim nerdctl -O namespace=pycri -O cni_path=/usr/lib/cni

Options are the fields of :class:`NerdctlOptions`; see :mod:`.shim` for
what each RPC costs in nerdctl processes.
"""

from pycri_shims.nerdctl.options import NerdctlOptions
from pycri_shims.nerdctl.shim import NerdctlShim

__all__ = ["NerdctlOptions", "NerdctlShim"]
