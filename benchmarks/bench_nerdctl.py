"""The pod lifecycle through pycri's nerdctl shim, raw nerdctl, and containerd's own CRI.

    python benchmarks/bench_nerdctl.py [--rounds 5] [--scale 110] [--containers 2]

Three columns, measured in one run with the rounds interleaved so machine
noise hits all alike:

* ``pycri``: ``pycri-server --shim nerdctl`` as a subprocess, driven by CRIClient;
* ``nerdctl``: the same steps as plain nerdctl commands (the engine floor);
* ``containerd``: containerd's own CRI plugin (namespace k8s.io) on
  /run/containerd/containerd.sock, driven by the same CRIClient (the peer).

Then the nerdctl processes pycri spent per RPC (from the server's Status
info); warm ContainerStatus and PodSandboxStatus latency (median and p99,
``--repeat`` calls of each on one running pod) beside containerd's and a
raw ``nerdctl container inspect``, with their processes per RPC; and, with
``--scale N``, list latency (median and p99) with N pods of
``--containers`` running containers each (a full node: 110 pods x 2), and
the nerdctl processes each list cost, and the CPU pycri-server and
containerd use meanwhile with no RPC at all (the log followers of a full
node at rest). Everything created is removed again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from _lifecycle import STEPS, Record, cri_lifecycle, timed
from bench_server import cpu_seconds

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri_shims.nerdctl import NerdctlOptions
from pycri_shims.nerdctl.cni import PodNetwork

CONTAINERD_CRI = "unix:///run/containerd/containerd.sock"
BUSYBOX = "docker.io/library/busybox:latest"
LABEL = "pycri.bench=nerdctl"

Timings = dict[str, list[float]]


def recorder(timings: Timings) -> Record:
    return lambda step, seconds: timings.setdefault(step, []).append(seconds)


# -- the CRI paths (pycri and containerd) ---------------------------------------------


def pod_config(logs: Path) -> cri.PodSandboxConfig:
    uid = uuid.uuid4().hex
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=f"bench-{uid[:8]}", namespace="bench", uid=uid),
        hostname=f"bench-{uid[:8]}",
        log_directory=str(logs / uid),
        labels={"pycri.bench": "nerdctl"},
        linux=cri.LinuxPodSandboxConfig(),
    )


def container_config(name: str = "app") -> cri.ContainerConfig:
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name),
        image=cri.ImageSpec(image=BUSYBOX),
        command=["sleep", "3600"],
        log_path=f"{name}.log",
        linux=cri.LinuxContainerConfig(),
    )


def cri_path(client: CRIClient, logs: Path, timings: Timings, created: list[str]) -> None:
    pod_id = cri_lifecycle(
        client, pod_config(logs), container_config(), recorder(timings),
        stop_timeout=2, on_pod=created.append,
    )  # fmt: skip
    created.remove(pod_id)


def remove_pods(client: CRIClient, pod_ids: list[str]) -> None:
    """Stop and remove them, four at a time; those that fail stay in ``pod_ids``."""

    def remove(pod_id: str) -> None:
        try:
            client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
            pod_ids.remove(pod_id)
        except Exception as err:  # keep cleaning the others
            print(f"could not remove pod {pod_id[:13]}: {err}", file=sys.stderr)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(remove, list(pod_ids)))


# -- raw nerdctl ----------------------------------------------------------------------


class Nerdctl:
    def __init__(self, options: NerdctlOptions) -> None:
        self.base = [options.nerdctl, *options.global_args()]
        self.options = options

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"nerdctl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout.strip()


def raw_lifecycle(nerdctl: Nerdctl, timings: Timings, created: list[str]) -> None:
    suffix = uuid.uuid4().hex[:8]
    pod, app = f"bench-pod-{suffix}", f"bench-app-{suffix}"
    created += [app, pod]
    opts = nerdctl.options
    record = recorder(timings)
    timed(
        record,
        "RunPodSandbox",
        lambda: nerdctl(
            "run", "-d", "--name", pod, "--pull", "never", "--net", opts.network,
            "--hostname", pod, "--label", LABEL, opts.pause_image,
        ),
    )  # fmt: skip
    timed(
        record,
        "CreateContainer",
        lambda: nerdctl(
            "create", "--name", app, "--pull", "never", "--net", f"container:{pod}",
            "--pid", f"container:{pod}", "--label", LABEL, BUSYBOX, "sleep", "3600",
        ),
    )  # fmt: skip
    timed(record, "StartContainer", lambda: nerdctl("start", app))
    timed(record, "StopContainer", lambda: nerdctl("stop", "-t", "2", app))
    timed(record, "RemoveContainer", lambda: nerdctl("rm", app))
    created.remove(app)
    timed(record, "StopPodSandbox", lambda: nerdctl("stop", "-t", "10", pod))
    timed(record, "RemovePodSandbox", lambda: nerdctl("rm", pod))
    created.remove(pod)


# -- the server under test ------------------------------------------------------------------


@contextmanager
def pycri_server(directory: Path) -> Iterator[tuple[str, int]]:
    """The endpoint and pid of ``pycri-server --shim nerdctl`` in ``directory``."""
    sock = directory / "pycri.sock"
    endpoint = f"unix://{sock}"
    command = [sys.executable, "-m", "pycri.server.main", "--shim", "nerdctl"]
    with open(directory / "server.log", "wb") as log:
        process = subprocess.Popen(
            [*command, "--listen", endpoint, "--log-level", "warning"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pycri-server did not start: {directory / 'server.log'}")
            time.sleep(0.05)
        yield endpoint, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def process_counts(client: CRIClient) -> dict[str, dict[str, float]]:
    info = client.status(cri.StatusRequest(verbose=True)).info
    counts: dict[str, dict[str, float]] = json.loads(info["nerdctlProcesses"])
    return counts


# -- list latency at scale ------------------------------------------------------------------


def samples_ms(action: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def median_ms(action: Callable[[], object], repeat: int = 7) -> float:
    return statistics.median(samples_ms(action, repeat))


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def latency_table(
    rpcs: tuple[str, ...],
    samples: tuple[Timings, Timings],
    counts: tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]],
    raw: tuple[float, ...],
    raw_label: str,
    ratio_of: str,
) -> None:
    """pycri's and containerd's p50 and p99 per RPC side by side, pycri's processes
    per call (``counts``: its process counts before and after), the raw nerdctl
    command's median, and pycri/containerd at ``ratio_of`` ("p50" or "p99")."""
    ours, theirs = samples
    before, after = counts
    point = statistics.median if ratio_of == "p50" else p99
    print(
        f"{'RPC':<18}{'pycri p50':>11}{'p99':>8}{'procs/RPC':>11}{'containerd p50':>16}"
        f"{'p99':>8}{raw_label:>17}{ratio_of + ' ratio':>11}"
    )
    for index, rpc in enumerate(rpcs):
        calls = after[rpc]["rpcs"] - before.get(rpc, {}).get("rpcs", 0)
        spent = after[rpc]["processes"] - before.get(rpc, {}).get("processes", 0)
        print(
            f"{rpc:<18}{statistics.median(ours[rpc]):>11.2f}{p99(ours[rpc]):>8.2f}"
            f"{spent / max(calls, 1):>11.2f}"
            f"{statistics.median(theirs[rpc]):>16.2f}{p99(theirs[rpc]):>8.2f}{raw[index]:>17.1f}"
            f"{point(ours[rpc]) / point(theirs[rpc]):>11.2f}"
        )


def populate(client: CRIClient, logs: Path, count: int, per_pod: int, created: list[str]) -> None:
    """``count`` pods of ``per_pod`` running containers, four at a time."""

    def one() -> None:
        config = pod_config(logs)
        pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        created.append(pod_id)
        for index in range(per_pod):
            request = cri.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=container_config(f"app{index}"), sandbox_config=config
            )
            container_id = client.create_container(request).container_id
            client.start_container(cri.StartContainerRequest(container_id=container_id))

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(one) for _ in range(count)]:
            future.result()


LISTS = ("ListPodSandbox", "ListContainers")


def list_samples(client: CRIClient, repeat: int) -> dict[str, list[float]]:
    return {
        "ListPodSandbox": samples_ms(lambda: client.list_pod_sandbox(), repeat),
        "ListContainers": samples_ms(lambda: client.list_containers(), repeat),
    }


# -- statuses ----------------------------------------------------------------------------

STATUSES = ("ContainerStatus", "PodSandboxStatus")


def running_pod(client: CRIClient, logs: Path, created: list[str]) -> tuple[str, str]:
    """A pod with one running container: (pod id, container id)."""
    config = pod_config(logs)
    pod_id = client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
    created.append(pod_id)
    request = cri.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container_config(), sandbox_config=config
    )
    container_id = client.create_container(request).container_id
    client.start_container(cri.StartContainerRequest(container_id=container_id))
    return pod_id, container_id


def status_samples(client: CRIClient, pod_id: str, container_id: str, repeat: int) -> Timings:
    container = cri.ContainerStatusRequest(container_id=container_id)
    pod = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
    return {
        "ContainerStatus": samples_ms(lambda: client.container_status(container), repeat),
        "PodSandboxStatus": samples_ms(lambda: client.pod_sandbox_status(pod), repeat),
    }


def statuses(
    pycri: CRIClient,
    native: CRIClient,
    nerdctl: Nerdctl,
    logs: Path,
    created: tuple[list[str], list[str]],
    repeat: int,
) -> None:
    """Warm statuses of one running pod and its container, interleaved in slices."""
    ours_ids = running_pod(pycri, logs, created[0])
    theirs_ids = running_pod(native, logs, created[1])
    status_samples(pycri, *ours_ids, 1)  # warm-up: the first inspects
    status_samples(native, *theirs_ids, 1)
    before = process_counts(pycri)
    ours: Timings = {rpc: [] for rpc in STATUSES}
    theirs: Timings = {rpc: [] for rpc in STATUSES}
    for _ in range(10):
        for rpc, samples in status_samples(pycri, *ours_ids, max(repeat // 10, 1)).items():
            ours[rpc] += samples
        for rpc, samples in status_samples(native, *theirs_ids, max(repeat // 10, 1)).items():
            theirs[rpc] += samples
    after = process_counts(pycri)
    raw = (
        median_ms(lambda: nerdctl("container", "inspect", ours_ids[1])),
        median_ms(lambda: nerdctl("container", "inspect", ours_ids[0])),
    )
    print(f"\nwarm statuses of one running pod, {len(ours[STATUSES[0]])} calls each")
    latency_table(STATUSES, (ours, theirs), (before, after), raw, "nerdctl inspect", "p50")
    remove_pods(pycri, created[0])
    remove_pods(native, created[1])


# -- report -----------------------------------------------------------------------------------


def report(columns: dict[str, Timings], counts: dict[str, float]) -> None:
    names = list(columns)
    print(f"\npod lifecycle, median ms over the rounds ({', '.join(names)})")
    header = f"{'step':<18}" + "".join(f"{n:>12}" for n in names)
    print(header + f"{'pycri/nerdctl':>15}{'pycri/CRI':>11}{'procs/RPC':>11}")
    totals = dict.fromkeys(names, 0.0)
    for step in STEPS:
        medians = {n: statistics.median(columns[n][step]) * 1000 for n in names}
        for n in names:
            totals[n] += medians[n]
        print(
            f"{step:<18}"
            + "".join(f"{medians[n]:>12.1f}" for n in names)
            + f"{medians['pycri'] / medians['nerdctl']:>15.2f}"
            + f"{medians['pycri'] / medians['containerd']:>11.2f}"
            + f"{counts.get(step, 0):>11.1f}"
        )
    print(
        f"{'total':<18}"
        + "".join(f"{totals[n]:>12.1f}" for n in names)
        + f"{totals['pycri'] / totals['nerdctl']:>15.2f}"
        + f"{totals['pycri'] / totals['containerd']:>11.2f}"
        + f"{sum(counts.get(s, 0) for s in STEPS):>11.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=int, default=110, help="pods for the list test (0: skip)")
    parser.add_argument("--containers", type=int, default=2, help="containers per pod (--scale)")
    parser.add_argument("--repeat", type=int, default=200, help="calls of each list and status")
    args = parser.parse_args()

    options = NerdctlOptions()
    nerdctl = Nerdctl(options)
    columns: dict[str, Timings] = {"pycri": {}, "nerdctl": {}, "containerd": {}}
    pycri_pods: list[str] = []
    containerd_pods: list[str] = []
    raw_names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pycri-bench-") as tmp:
        logs = Path(tmp) / "logs"
        with pycri_server(Path(tmp)) as (endpoint, server_pid):
            pycri = CRIClient(endpoint, timeout=120)
            native = CRIClient(CONTAINERD_CRI, timeout=120)
            try:
                print(f"pycri:      {pycri.version().runtime_version}")
                print(f"containerd: {native.version().runtime_version} (its CRI plugin, k8s.io)")
                # warm-up: first calls load images, CNI plugins and Python modules
                cri_path(pycri, logs, {}, pycri_pods)
                cri_path(native, logs, {}, containerd_pods)
                raw_lifecycle(nerdctl, {}, raw_names)
                before = process_counts(pycri)
                for _ in range(args.rounds):
                    cri_path(pycri, logs, columns["pycri"], pycri_pods)
                    raw_lifecycle(nerdctl, columns["nerdctl"], raw_names)
                    cri_path(native, logs, columns["containerd"], containerd_pods)
                after = process_counts(pycri)
                counts = {
                    rpc: (after[rpc]["processes"] - before.get(rpc, {}).get("processes", 0))
                    / args.rounds
                    for rpc in STEPS
                    if rpc in after
                }
                report(columns, counts)
                statuses(pycri, native, nerdctl, logs, (pycri_pods, containerd_pods), args.repeat)
                if args.scale:
                    scale(args, (pycri, native), nerdctl, logs, (pycri_pods, containerd_pods))
                    idle(server_pid, args.scale, args.containers)
            finally:
                remove_pods(pycri, pycri_pods)
                remove_pods(native, containerd_pods)
                for name in raw_names:
                    subprocess.run([*nerdctl.base, "rm", "-f", name], capture_output=True)
                release_raw_networks(nerdctl)
                pycri.close()
                native.close()


def release_raw_networks(nerdctl: Nerdctl) -> None:
    """Remove the NAT rules raw nerdctl leaves: its ``rm`` hook runs CNI DEL without
    the pod's address, so each raw pod keeps its masquerade rule and chain (3 lines of
    ``iptables -t nat -S``). The shim's own start-up sweep (cni.py) does the same."""
    options = nerdctl.options
    live = nerdctl("ps", "-a", "-q", "--no-trunc").split()
    swept = PodNetwork(options.namespace, options.cni_path, options.cni_netconfpath).sweep(live)
    if swept:
        print(f"released {swept} CNI rule(s) and cache(s) raw nerdctl left")


def scale(
    args: argparse.Namespace,
    clients: tuple[CRIClient, CRIClient],
    nerdctl: Nerdctl,
    logs: Path,
    created: tuple[list[str], list[str]],
) -> None:
    """Lists at scale; the pods stay for :func:`idle` (removed with the others)."""
    (pycri, native), (pycri_pods, containerd_pods) = clients, created
    count, per_pod, repeat = args.scale, args.containers, args.repeat
    print(f"\nlists with {count} running pods of {per_pod} containers each, {repeat} calls each")
    started = time.monotonic()
    populate(pycri, logs, count, per_pod, pycri_pods)
    populate(native, logs, count, per_pod, containerd_pods)
    print(f"(populated in {time.monotonic() - started:.0f} s)")
    listed = len(pycri.list_containers().containers)
    assert listed >= count * per_pod, f"pycri lists {listed} containers"
    before = process_counts(pycri)
    # interleaved in slices, so machine noise hits both alike
    ours: dict[str, list[float]] = {rpc: [] for rpc in LISTS}
    theirs: dict[str, list[float]] = {rpc: [] for rpc in LISTS}
    for _ in range(10):
        for rpc, samples in list_samples(pycri, repeat // 10).items():
            ours[rpc] += samples
        for rpc, samples in list_samples(native, repeat // 10).items():
            theirs[rpc] += samples
    after = process_counts(pycri)
    kind = "label=io.kubernetes.docker.type"
    raw = (
        median_ms(
            lambda: nerdctl("ps", "-a", "--format", "json", "--filter", f"{kind}=podsandbox")
        ),
        median_ms(lambda: nerdctl("ps", "-a", "--format", "json", "--filter", f"{kind}=container")),
    )
    latency_table(LISTS, (ours, theirs), (before, after), raw, "nerdctl ps", "p99")


def idle(server_pid: int, count: int, per_pod: int, seconds: float = 10.0) -> None:
    """pycri-server's and containerd's CPU with the scale test's pods and no RPC."""
    found = subprocess.run(["pgrep", "-o", "-x", "containerd"], capture_output=True, text=True)
    pids = {"pycri-server": server_pid, "containerd": int(found.stdout.split()[0])}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    use = {name: 100 * (cpu_seconds(pid) - before[name]) / seconds for name, pid in pids.items()}
    print(
        f"\nat rest with {count} pods of {per_pod} containers each, over {seconds:.0f} s:"
        f" pycri-server {use['pycri-server']:.1f}% of a core,"
        f" containerd {use['containerd']:.1f}% (it runs both sides' containers)"
    )


if __name__ == "__main__":
    main()
