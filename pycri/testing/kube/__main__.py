"""``python -m pycri.testing.kube``: a one-node cluster until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from pycri.testing.kube.cluster import RUNTIMES, Cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pycri.testing.kube", description=__doc__)
    parser.add_argument("--runtime", choices=RUNTIMES, default="docker")
    parser.add_argument("--bin-dir", type=Path, help="the Kubernetes binaries "
                        "(default: where scripts/setup-kubernetes.sh builds them)")  # fmt: skip
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="pycri-k8s-", dir="/var/tmp"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    started = time.monotonic()
    with Cluster(args.runtime, directory, bin_dir=args.bin_dir) as cluster:
        print(f"node {cluster.node} Ready after {time.monotonic() - started:.1f}s "
              f"(runtime {args.runtime}, endpoint {cluster.endpoint})")  # fmt: skip
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print("Ctrl-C stops the cluster and removes everything under", directory)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
