"""Runtime shims shipped with pycri, installed as the import package ``pycri_shims``."""
