"""How often ExecSync returns a process's output whole: many short execs, counted.

    python benchmarks/exec_integrity.py [--shim nerdctl] [-O KEY=VALUE]... \\
        [--calls 400] [--parallel 1]

Each call runs ``echo out N; echo err N >&2; exit 3`` in one busybox
container and checks stdout, stderr and the exit code exactly. Engines that
lose the last output of a short exec (nerdctl 1.7.7 does, rarely, under
load) show it here. Removes the pod it made.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.registry import load_shim

IMAGE = "docker.io/library/busybox:latest"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shim", default="nerdctl")
    parser.add_argument("-O", "--shim-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args(argv)
    options = dict(option.split("=", 1) for option in args.shim_option)
    runtime = CRIRuntime(load_shim(args.shim, options))
    uid = uuid.uuid4().hex
    pod = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=f"integrity-{uid[:8]}", namespace="bench", uid=uid),
        linux=cri.LinuxPodSandboxConfig(),
    )
    pod_id = runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=pod)).pod_sandbox_id
    try:
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name="app"),
            image=cri.ImageSpec(image=IMAGE),
            command=["sleep", "3600"],
            linux=cri.LinuxContainerConfig(),
        )
        request = cri.CreateContainerRequest(
            pod_sandbox_id=pod_id, sandbox_config=pod, config=config
        )
        container_id = runtime.create_container(request).container_id
        runtime.start_container(cri.StartContainerRequest(container_id=container_id))

        def whole(n: int) -> bool:
            answer = runtime.exec_sync(
                cri.ExecSyncRequest(
                    container_id=container_id,
                    cmd=["sh", "-c", f"echo out {n}; echo err {n} >&2; exit 3"],
                    timeout=30,
                )
            )
            expected = (f"out {n}\n".encode(), f"err {n}\n".encode(), 3)
            return (answer.stdout, answer.stderr, answer.exit_code) == expected

        started = time.monotonic()
        with ThreadPoolExecutor(max(1, args.parallel)) as pool:
            results = list(pool.map(whole, range(args.calls)))
        wrong = results.count(False)
        print(
            f"shim {args.shim}: {args.calls} ExecSync, {args.parallel} at once: "
            f"{wrong} with output lost or changed ({time.monotonic() - started:.0f} s)"
        )
    finally:
        runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
