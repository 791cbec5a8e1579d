"""``python -m pycri.cli``: the same as the ``pycrictl`` script."""

from pycri.cli.main import main

main()
