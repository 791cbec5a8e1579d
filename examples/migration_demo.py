"""From dockershim to containerd, run and measured.

    python examples/migration_demo.py                  # docker, nerdctl, containerd's CRI
    python examples/migration_demo.py --fake           # two fake handlers (no daemons needed)

1. The same CRI pod lifecycle (run pod, create, start, stop, remove, stop
   pod, remove pod) through each path, timed step by step.
2. The same Pod manifests through pycri.kubelet on each path: time to Running.
3. One pycri-server serving two runtime handlers (docker and nerdctl, like a
   node that has both): the manifests run on the first, then pods move to the
   second one at a time with no change to the manifests, and a table of pod
   status is printed after each move.

With ``--plot FILE.svg`` it draws the per-step latencies (docs/img uses it).
Everything it creates is removed; exit code 0 when every step succeeded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.router import HandlerRouter
from pycri.core.runtime import CRIRuntime
from pycri.errors import CRIError
from pycri.kubelet import Kubelet
from pycri.registry import load_shim
from pycri.server.server import CRIServer
from pycri.shim import Shim

IMAGE = "docker.io/library/busybox:latest"
STEPS = (
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
)
CONTAINERD_SOCKET = "unix:///run/containerd/containerd.sock"


def manifest(name: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: demo, labels: {{app: demo}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {IMAGE}
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo started; sleep 3600"]
"""


@dataclass
class Path_:
    """One way to reach a runtime: a label and a CRI endpoint."""

    label: str
    endpoint: str
    step_ms: dict[str, list[float]] = field(default_factory=dict)
    to_running_s: float = 0.0


@contextmanager
def serve(shims: dict[str, Shim], default: str, tmp: Path, name: str) -> Iterator[str]:
    """pycri-server in process: one shim, or a router over several handlers."""
    shim = shims[default] if len(shims) == 1 else HandlerRouter(shims, default=default)
    runtime = CRIRuntime(shim)
    server = CRIServer(runtime, f"unix://{tmp / f'{name}.sock'}").start()
    try:
        yield server.address
    finally:
        server.stop(grace=1)
        runtime.close()


def time_lifecycle(client: CRIClient, path: Path_, rounds: int, tag: str) -> None:
    for n in range(rounds):
        config = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(
                name=f"lifecycle-{n}", namespace="demo", uid=f"{tag}-{n}-{time.time_ns()}"
            ),
            linux=cri.LinuxPodSandboxConfig(),
        )
        one_lifecycle(client, path, config)


def one_lifecycle(client: CRIClient, path: Path_, config: cri.PodSandboxConfig) -> None:
    ids: dict[str, str] = {}

    def timed(step: str, call: Callable[[], object]) -> None:
        started = time.perf_counter()
        call()
        path.step_ms.setdefault(step, []).append((time.perf_counter() - started) * 1000)

    def run_pod() -> None:
        ids["pod"] = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id

    def create() -> None:
        ids["ctr"] = client.create_container(
            cri.CreateContainerRequest(
                pod_sandbox_id=ids["pod"],
                sandbox_config=config,
                config=cri.ContainerConfig(
                    metadata=cri.ContainerMetadata(name="app"),
                    image=cri.ImageSpec(image=IMAGE),
                    command=["sleep", "3600"],
                    linux=cri.LinuxContainerConfig(),
                ),
            )
        ).container_id

    try:
        timed("RunPodSandbox", run_pod)
        timed("CreateContainer", create)
        timed("StartContainer", lambda: client.start_container(
            cri.StartContainerRequest(container_id=ids["ctr"])))  # fmt: skip
        timed("StopContainer", lambda: client.stop_container(
            cri.StopContainerRequest(container_id=ids["ctr"], timeout=0)))  # fmt: skip
        timed("RemoveContainer", lambda: client.remove_container(
            cri.RemoveContainerRequest(container_id=ids["ctr"])))  # fmt: skip
        timed("StopPodSandbox", lambda: client.stop_pod_sandbox(
            cri.StopPodSandboxRequest(pod_sandbox_id=ids["pod"])))  # fmt: skip
        timed("RemovePodSandbox", lambda: client.remove_pod_sandbox(
            cri.RemovePodSandboxRequest(pod_sandbox_id=ids["pod"])))  # fmt: skip
    finally:
        if "pod" in ids:
            client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=ids["pod"]))


def kubelet_for(client: CRIClient, tmp: Path, name: str, handler: str = "") -> Kubelet:
    return Kubelet(
        client,
        manifest_dir=tmp / name / "manifests",
        root_dir=tmp / name / "root",
        log_root=tmp / name / "logs",
        node_name="demo-node",
        runtime_handler=handler,
    )


def sync_until(kubelet: Kubelet, done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        kubelet.sync_once()
        if done():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def all_running(kubelet: Kubelet, names: list[str]) -> bool:
    return all(kubelet.pod_status(n, "demo").phase == "Running" for n in names)


def delete_all(kubelet: Kubelet, names: list[str]) -> None:
    for name in names:
        kubelet.delete(name, "demo", grace_period=0)


def time_manifests(client: CRIClient, path: Path_, tmp: Path, names: list[str]) -> None:
    kubelet = kubelet_for(client, tmp, path.label.replace(" ", "-"))
    try:
        started = time.perf_counter()
        for name in names:
            kubelet.apply(manifest(name))
        sync_until(kubelet, lambda: all_running(kubelet, names), 120, f"{path.label} pods")
        path.to_running_s = time.perf_counter() - started
    finally:
        delete_all(kubelet, names)


def status_table(client: CRIClient, kubelet: Kubelet, names: list[str]) -> str:
    handler_of = {
        p.metadata.name: p.runtime_handler
        for p in client.list_pod_sandbox().items
        if p.state == cri.SANDBOX_READY
    }
    rows = [f"    {'POD':<10}{'HANDLER':<12}{'PHASE':<10}{'READY':<7}RESTARTS"]
    for name in names:
        status = kubelet.pod_status(name, "demo")
        restarts = sum(c.restart_count for c in status.container_statuses)
        rows.append(
            f"    {name:<10}{handler_of.get(name, '-'):<12}{status.phase:<10}"
            f"{status.ready!s:<7}{restarts}"
        )
    return "\n".join(rows)


def migrate(shims: dict[str, Shim], old: str, new: str, tmp: Path, names: list[str]) -> list[float]:
    """Run the manifests on ``old``, then move them to ``new`` one pod at a time."""
    moves: list[float] = []
    with serve(shims, old, tmp, "router") as address, CRIClient(address, timeout=120) as client:
        kubelet = kubelet_for(client, tmp, "migration", handler=old)
        try:
            for name in names:
                kubelet.apply(manifest(name))
            sync_until(kubelet, lambda: all_running(kubelet, names), 120, "pods on " + old)
            print(f"\n  all pods running on handler {old!r}:")
            print(status_table(client, kubelet, names))
            for name in names:
                started = time.perf_counter()
                kubelet.move(name, "demo", new)

                def moved(pod: str = name) -> bool:
                    ready = {
                        p.runtime_handler
                        for p in client.list_pod_sandbox().items
                        if p.metadata.name == pod and p.state == cri.SANDBOX_READY
                    }
                    return ready == {new} and kubelet.pod_status(pod, "demo").phase == "Running"

                sync_until(kubelet, moved, 120, f"{name} on {new}")
                moves.append(time.perf_counter() - started)
                print(f"\n  moved {name} to {new!r} in {moves[-1]:.2f}s:")
                print(status_table(client, kubelet, names))
        finally:
            delete_all(kubelet, names)
    return moves


def svg_plot(paths: list[Path_], target: Path) -> None:
    """A grouped bar chart of median latency per lifecycle step and path."""
    colours = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")
    medians = [[statistics.median(p.step_ms[s]) for s in STEPS] for p in paths]
    top = max(max(m) for m in medians) * 1.15 or 1.0
    width, height, left, chart_h = 900, 420, 60, 280
    slot = (width - left - 20) / len(STEPS)
    bar = slot * 0.8 / len(paths)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">'
        "Median latency per CRI lifecycle step (ms)</text>",
        f'<line x1="{left}" y1="{30 + chart_h}" x2="{width - 10}" y2="{30 + chart_h}" '
        'stroke="black"/>',
    ]
    for tick in range(5):
        value = top * tick / 4
        y = 30 + chart_h - chart_h * tick / 4
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.0f}</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" '
                     'stroke="#ddd"/>')  # fmt: skip
    for s, step in enumerate(STEPS):
        x0 = left + s * slot + slot * 0.1
        for p, values in enumerate(medians):
            h = chart_h * values[s] / top
            x = x0 + p * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{30 + chart_h - h:.1f}" width="{bar - 2:.1f}" '
                f'height="{h:.1f}" fill="{colours[p % len(colours)]}">'
                f"<title>{paths[p].label} {step}: {values[s]:.1f} ms</title></rect>"
            )
        parts.append(
            f'<text x="{x0 + slot * 0.4:.1f}" y="{30 + chart_h + 16}" text-anchor="middle">'
            f"{step.replace('PodSandbox', 'Pod')}</text>"
        )
    for p, path in enumerate(paths):
        x = left + p * 220
        parts.append(f'<rect x="{x}" y="{height - 40}" width="12" height="12" '
                     f'fill="{colours[p % len(colours)]}"/>')  # fmt: skip
        parts.append(f'<text x="{x + 18}" y="{height - 30}">{path.label}</text>')
    parts.append("</svg>")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(parts) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fake", action="store_true", help="two fake handlers, no daemons")
    parser.add_argument("--pods", type=int, default=3, help="pods to run and migrate")
    parser.add_argument("--rounds", type=int, default=5, help="timed lifecycles per path")
    parser.add_argument("--containerd", default=CONTAINERD_SOCKET, help="containerd's CRI socket")
    parser.add_argument("--plot", type=Path, help="write the per-step latency chart (SVG)")
    args = parser.parse_args(argv)
    names = [f"web-{i}" for i in range(args.pods)]
    old, new = ("fake-a", "fake-b") if args.fake else ("docker", "nerdctl")
    kinds = {"fake-a": "fake", "fake-b": "fake", "docker": "docker", "nerdctl": "nerdctl"}
    with tempfile.TemporaryDirectory(prefix="pycri-demo-") as tmp_dir:
        tmp = Path(tmp_dir)
        paths: list[Path_] = []
        try:
            print("1. the same CRI lifecycle through each path")
            for label in (old, new):
                with serve({label: load_shim(kinds[label])}, label, tmp, label) as address:
                    path = Path_(f"{label} shim", address)
                    with CRIClient(address, timeout=120) as client:
                        time_lifecycle(client, path, args.rounds, label)
                        time_manifests(client, path, tmp, names)
                    paths.append(path)
            if not args.fake:
                path = Path_("containerd CRI", args.containerd)
                with CRIClient(args.containerd, timeout=120) as client:
                    client.version()
                    time_lifecycle(client, path, args.rounds, "containerd")
                    time_manifests(client, path, tmp, names)
                paths.append(path)
            print(f"  median ms over {args.rounds} rounds")
            print(f"  {'step':<18}" + "".join(f"{p.label:>16}" for p in paths))
            for step in STEPS:
                print(f"  {step:<18}" + "".join(
                    f"{statistics.median(p.step_ms[step]):>16.1f}" for p in paths))  # fmt: skip
            totals = [sum(statistics.median(p.step_ms[s]) for s in STEPS) for p in paths]
            print(f"  {'whole lifecycle':<18}" + "".join(f"{t:>16.1f}" for t in totals))
            print(f"\n2. {len(names)} pods from manifests to Running (pycri.kubelet)")
            for p in paths:
                print(f"  {p.label:<18}{p.to_running_s:>8.2f} s")
            print(f"\n3. one server, handlers {old!r} and {new!r}: moving pods one at a time")
            shims = {old: load_shim(kinds[old]), new: load_shim(kinds[new])}
            moves = migrate(shims, old, new, tmp, names)
            print(f"\n  moves: median {statistics.median(moves):.2f}s, max {max(moves):.2f}s")
        except (CRIError, RuntimeError) as err:
            print(f"demo failed: {err}", file=sys.stderr)
            return 1
        if args.plot:
            svg_plot(paths, args.plot)
            print(f"\nplot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
