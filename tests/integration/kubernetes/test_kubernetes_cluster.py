"""A real cluster (API server, scheduler, controllers, kubelet v1.34) on each runtime.

The same tests run on pycri's docker and nerdctl shims and on containerd's
own CRI, the reference: a failure on pycri alone is pycri's. Names are what
Kubernetes generates (Deployment pods' ``<name>-<hash>-<suffix>``), images
are pulled on a node that has none (the nerdctl namespace and the private
dockerd start empty). The tests of a module share one cluster and run in
file order; the last one deletes everything and checks what is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycri.api import api_pb2 as cri
from pycri.testing import require_real
from pycri.testing.kube import RUNTIMES, Cluster
from pycri.testing.kube.cluster import KUBELET_HOST_PATHS, NODE_LINK, default_bin_dir
from pycri.testing.kube.private_dockerd import PrivateDockerd

pytestmark = [pytest.mark.real, pytest.mark.slow]

NGINX = "nginx"  # docker.io/library/nginx, a stand-in served offline (setup-critest.sh)
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
WAIT = 180.0
#: the main container reads what the init container wrote, served by the sidecar
FETCH_FROM_SIDECAR = "until wget -qO- http://127.0.0.1:8080/; do sleep 1; done; sleep 3600"
TICKER = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done"


def poll(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """``check()`` until it returns something truthy; its last value in the failure."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not after {timeout:.0f}s (last: {value!r})")


def pod(cluster: Cluster, name: str, namespace: str = "default") -> dict[str, Any]:
    result: dict[str, Any] = cluster.kubectl_json("get", "pod", name, "-n", namespace)
    return result


def wait_ready(cluster: Cluster, target: str, namespace: str = "default") -> None:
    cluster.kubectl("wait", "--for=condition=Ready", target, "-n", namespace,
                    f"--timeout={WAIT:.0f}s", timeout=WAIT + 30)  # fmt: skip


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def apply(cluster: Cluster, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- one cluster per runtime, checked for leftovers on the whole machine at the end --


BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
            "kubectl")  # fmt: skip


def _why_unavailable(runtime: str) -> str | None:
    missing = [name for name in BINARIES if not (default_bin_dir() / name).exists()]
    if missing:
        return f"{', '.join(missing)} not built (scripts/setup-kubernetes.sh)"
    if not Path("/run/containerd/containerd.sock").exists():
        return "containerd is not running (scripts/setup-runtimes.sh)"
    if runtime == "docker" and subprocess.run(["which", "dockerd"], capture_output=True).returncode:
        return "dockerd is not installed (scripts/setup-runtimes.sh)"
    return None


def _host_leftovers(directory: Path, before: set[Path], runtime: str) -> list[str]:
    found = []
    mounts = Path("/proc/self/mountinfo").read_text()
    if str(directory) in mounts:
        found.append(f"mounts under {directory}")
    if directory.exists():
        found.append(f"{directory} still exists")
    for path in KUBELET_HOST_PATHS:
        if path.exists() and path not in before:
            found.append(f"{path} created and left")
    processes = subprocess.run(["pgrep", "-af", str(directory)], capture_output=True, text=True)
    found += [f"process {line}" for line in processes.stdout.splitlines()]
    for link in ("pycri-k8s0", NODE_LINK):
        if Path(f"/sys/class/net/{link}").exists():
            found.append(f"network interface {link}")
    namespaces = PrivateDockerd.containerd_namespaces()
    found += [f"containerd namespace {n}" for n in namespaces if n.startswith("pycri-pycri-k8s0")]
    if runtime == "nerdctl" and "pycri-k8s" in namespaces:
        found.append("containerd namespace pycri-k8s (its images, snapshots or leases)")
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    found += [f"nat rule {r}" for r in nat.splitlines() if "pycri-k8s-" in r]
    return found


@pytest.fixture(scope="module", params=RUNTIMES)
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    runtime: str = request.param
    reason = _why_unavailable(runtime)
    require_real(reason is None, reason or "")
    before = {path for path in KUBELET_HOST_PATHS if path.exists()}
    directory = Path(tempfile.mkdtemp(prefix=f"pycri-k8s-{runtime}-", dir="/var/tmp"))
    cluster = Cluster(runtime, directory)
    started = time.monotonic()
    cluster.up()
    print(f"\n{runtime}: node Ready {time.monotonic() - started:.1f}s after start")
    try:
        yield cluster
    finally:
        cluster.down()
        left = _host_leftovers(directory, before, runtime)
        assert not left, f"the {runtime} cluster left: {left}"


# -- the node ---------------------------------------------------------------------------


def test_node_is_ready_and_names_its_runtime(cluster: Cluster) -> None:
    node = cluster.kubectl_json("get", "node", cluster.node)
    info = node["status"]["nodeInfo"]
    expected = "containerd://" if cluster.runtime == "containerd" else "pycri://"
    assert info["containerRuntimeVersion"].startswith(expected), info
    assert info["kubeletVersion"] == "v1.34.4"
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True", ready


# -- workloads --------------------------------------------------------------------------


def test_kubectl_run_nginx_serves_http_on_its_pod_ip(cluster: Cluster) -> None:
    cluster.kubectl("run", "nginx", f"--image={NGINX}", "--port=80")
    wait_ready(cluster, "pod/nginx")
    ip = pod(cluster, "nginx")["status"]["podIP"]
    assert ip, "no pod IP"
    page = poll(f"HTTP on {ip}", lambda: _try(lambda: http_get(f"http://{ip}/")), timeout=30)
    assert "Welcome to nginx!" in page


def _try(call: Callable[[], str]) -> str:
    try:
        return call()
    except OSError:
        return ""


def test_a_deployment_scales_up_and_down(cluster: Cluster) -> None:
    cluster.kubectl("create", "deployment", "web", f"--image={NGINX}", "--replicas=3")
    for replicas in (3, 5, 2):
        if replicas != 3:
            cluster.kubectl("scale", "deployment/web", f"--replicas={replicas}")
        cluster.kubectl("rollout", "status", "deployment/web", f"--timeout={WAIT:.0f}s",
                        timeout=WAIT + 30)  # fmt: skip
        poll(f"{replicas} web pods, each with a ready sandbox",
             lambda: _web_sandboxes(cluster) == replicas)  # fmt: skip  # noqa: B023
    names = [
        p["metadata"]["name"] for p in cluster.kubectl_json("get", "pods", "-l", "app=web")["items"]
    ]
    assert all(n.startswith("web-") and len(n) > 15 for n in names), names


def _web_sandboxes(cluster: Cluster) -> int:
    pods = cluster.kubectl_json("get", "pods", "-l", "app=web")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    with cluster.cri() as client:
        ready = client.list_pod_sandbox(cri.ListPodSandboxRequest(
            filter=cri.PodSandboxFilter(state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY),
                                        label_selector={"app": "web"}))).items  # fmt: skip
    running = all(p["status"].get("phase") == "Running" for p in live)
    return len(ready) if running and len(live) == len(ready) else -1


def test_init_container_and_sidecar_share_a_volume_and_localhost(cluster: Cluster) -> None:
    apply(cluster, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "shared"},
        "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}],
            "initContainers": [
                {"name": "prepare", "image": BUSYBOX,
                 "command": ["sh", "-c", "echo prepared-by-init > /data/index.html"],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                # a native sidecar: an init container that keeps running
                {"name": "server", "image": BUSYBOX, "restartPolicy": "Always",
                 "command": ["httpd", "-f", "-p", "8080", "-h", "/data"],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            ],
            "containers": [
                {"name": "client", "image": BUSYBOX,
                 "command": ["sh", "-c",
                             FETCH_FROM_SIDECAR]},
            ],
        },
    })  # fmt: skip
    wait_ready(cluster, "pod/shared")
    poll("the client's log", lambda: "prepared-by-init" in _logs(cluster, "shared", "client"))


def _logs(cluster: Cluster, name: str, container: str) -> str:
    return cluster.kubectl("logs", name, "-c", container).stdout


def test_a_crashing_pod_backs_off_and_counts_restarts(cluster: Cluster) -> None:
    cluster.kubectl("run", "crasher", f"--image={BUSYBOX}", "--restart=Always",
                    "--command", "--", "sh", "-c", "echo boom; exit 3")  # fmt: skip

    def backing_off() -> dict[str, Any] | None:
        statuses = pod(cluster, "crasher")["status"].get("containerStatuses") or [{}]
        status: dict[str, Any] = statuses[0]
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff" and status.get("restartCount", 0) >= 2:
            return status
        return None

    status = poll("CrashLoopBackOff with restarts", backing_off)
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert "boom" in cluster.kubectl("logs", "crasher", "--previous").stdout


# -- streaming: logs, exec, attach, port-forward -----------------------------------------


def test_logs_and_logs_follow(cluster: Cluster) -> None:
    cluster.kubectl("run", "ticker", f"--image={BUSYBOX}", "--command", "--",
                    "sh", "-c", TICKER)  # fmt: skip
    wait_ready(cluster, "pod/ticker")
    poll("tick-1 in kubectl logs", lambda: "tick-1" in cluster.kubectl("logs", "ticker").stdout)
    with _kubectl_running(cluster, "logs", "-f", "ticker") as follow:
        assert follow.stdout is not None
        seen = [follow.stdout.readline().strip() for _ in range(8)]
    numbers = [int(line.removeprefix("tick-")) for line in seen if line.startswith("tick-")]
    assert len(numbers) == 8, seen
    assert numbers == list(range(numbers[0], numbers[0] + 8)), (
        "lines lost or repeated while following"
    )


@contextlib.contextmanager
def _kubectl_running(cluster: Cluster, *args: str) -> Iterator[subprocess.Popen[str]]:
    """kubectl ARGS in the background, its stdout a pipe; killed at the end."""
    argv = cluster.kubectl_argv(*args)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as p:
        try:
            yield p
        finally:
            p.kill()


def _pty_session(argv: list[str], typed: list[bytes], until: bytes, timeout: float = 60) -> bytes:
    """Run ``argv`` on a terminal, type each of ``typed``, read until ``until`` appears."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on the terminal
        os.execv(argv[0], argv)
    output = b""
    try:
        deadline = time.monotonic() + timeout
        pending = list(typed)
        while until not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    break
            elif pending and (
                b"#" in output or b"$" in output or time.monotonic() > deadline - timeout + 5
            ):
                os.write(fd, pending.pop(0))
        return output
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def test_exec_it_with_typed_input(cluster: Cluster) -> None:
    wait_ready(cluster, "pod/ticker")
    output = _pty_session(cluster.kubectl_argv("exec", "-it", "ticker", "--", "sh"),
                          [b"echo typed-$((6*7))\r", b"exit\r"], until=b"typed-42")  # fmt: skip
    assert b"typed-42" in output, output[-500:]


def test_attach_shows_the_output(cluster: Cluster) -> None:
    wait_ready(cluster, "pod/ticker")
    with _kubectl_running(cluster, "attach", "ticker") as attach:
        assert attach.stdout is not None
        line = attach.stdout.readline()
    assert line.startswith("tick-"), line


def test_attach_with_stdin(cluster: Cluster) -> None:
    if cluster.runtime == "nerdctl":
        pytest.xfail("nerdctl 1.7.7 starts containers without stdin (docs/kubernetes.md)")
    cluster.kubectl("run", "reader", f"--image={BUSYBOX}", "--stdin", "--command", "--",
                    "sh", "-c", "while read line; do echo got-$line; done")  # fmt: skip
    wait_ready(cluster, "pod/reader")

    def answered() -> bool:
        # containerd 1.6 runs the first container before its stdin is open: it
        # reads EOF, exits and is restarted; attach then reaches the next one
        argv = cluster.kubectl_argv("attach", "-i", "reader")
        subprocess.run(argv, input="hello\n", capture_output=True, text=True, timeout=60)
        return "got-hello" in cluster.kubectl("logs", "reader").stdout

    poll("got-hello in the log after attach -i", answered, timeout=90)


def test_port_forward_reaches_nginx(cluster: Cluster) -> None:
    wait_ready(cluster, "pod/nginx")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with _kubectl_running(cluster, "port-forward", "pod/nginx", f"{port}:80"):
        page = poll("HTTP through port-forward", lambda: _try(lambda: http_get(url)), timeout=60)
    assert "Welcome to nginx!" in page


# -- stats through the CRI ---------------------------------------------------------------


def _node_proxy(cluster: Cluster, path: str) -> str:
    return cluster.kubectl("get", "--raw", f"/api/v1/nodes/{cluster.node}/proxy{path}").stdout


def test_the_kubelets_stats_come_from_the_runtime(
    cluster: Cluster, request: pytest.FixtureRequest
) -> None:
    """With PodAndContainerStatsFromCRI the kubelet's figures are the runtime's.

    The full /stats/summary also needs cAdvisor's view of the node's root
    filesystem, which these VMs do not give it (500 on every runtime, see
    docs/kubernetes.md); the CPU-and-memory form is the one metrics-server reads.
    """
    if cluster.runtime == "containerd":
        request.applymarker(pytest.mark.xfail(
            reason="containerd 1.6 answers ListPodSandboxStats 'cgroupPath is empty' for pods "
                   "without a pod cgroup (cgroupsPerQOS: false)", strict=True))  # fmt: skip
    wait_ready(cluster, "pod/nginx")
    summary = f"/api/v1/nodes/{cluster.node}/proxy/stats/summary?only_cpu_and_memory=true"

    def nginx_stats() -> dict[str, Any] | None:
        for entry in json.loads(cluster.kubectl("get", "--raw", summary).stdout).get("pods", []):
            if entry["podRef"]["name"] == "nginx" and entry.get("memory", {}).get(
                "workingSetBytes"
            ):
                found: dict[str, Any] = entry
                return found
        return None

    stats = poll("nginx's stats in /stats/summary", nginx_stats, timeout=90)
    assert stats["cpu"]["usageCoreNanoSeconds"] > 0
    with cluster.cri() as client:
        nginx = cri.PodSandboxFilter(label_selector={"io.kubernetes.pod.name": "nginx"})
        sandbox = client.list_pod_sandbox(cri.ListPodSandboxRequest(filter=nginx)).items
        direct = client.list_pod_sandbox_stats(cri.ListPodSandboxStatsRequest(
            filter=cri.PodSandboxStatsFilter(id=sandbox[0].id))).stats[0]  # fmt: skip
    # the same counter, read by the kubelet a moment before or after
    assert (
        0
        < stats["cpu"]["usageCoreNanoSeconds"]
        <= direct.linux.cpu.usage_core_nano_seconds.value * 2
    )
    resource = _node_proxy(cluster, "/metrics/resource")
    assert 'pod_memory_working_set_bytes{namespace="default",pod="nginx"}' in resource
    cadvisor = _node_proxy(cluster, "/metrics/cadvisor")
    nginx_lines = [line for line in cadvisor.splitlines() if 'pod="nginx"' in line]
    assert any(line.startswith("container_cpu_usage_seconds_total{") for line in nginx_lines)


# -- restarts ----------------------------------------------------------------------------


def _identities(cluster: Cluster) -> dict[str, tuple[str, int]]:
    """Per running pod: its containers' ids and restart counts."""
    found = {}
    for item in cluster.kubectl_json("get", "pods")["items"]:
        for status in item["status"].get("containerStatuses", []):
            if "running" in status.get("state", {}):
                key = f"{item['metadata']['name']}/{status['name']}"
                found[key] = (status["containerID"], status["restartCount"])
    return found


def _sandbox_ids(cluster: Cluster) -> set[str]:
    with cluster.cri() as client:
        return {p.id for p in client.list_pod_sandbox(cri.ListPodSandboxRequest()).items
                if p.state == cri.SANDBOX_READY}  # fmt: skip


def test_restarting_the_kubelet_then_pycri_keeps_the_pods(cluster: Cluster) -> None:
    wait_ready(cluster, "pod/nginx")
    before, sandboxes = _identities(cluster), _sandbox_ids(cluster)
    assert "nginx/nginx" in before
    cluster.restart_kubelet()
    poll("the node Ready again", cluster._node_ready)
    time.sleep(15)  # a sync period and more, for the kubelet to act on what it found
    assert {k: v for k, v in _identities(cluster).items() if k in before} == before
    assert _sandbox_ids(cluster) == sandboxes
    if cluster.runtime == "containerd":
        return  # the reference has no pycri-server to restart
    cluster.daemons["pycri-server"].kill9()
    cluster.start_pycri_server()
    time.sleep(15)
    assert {k: v for k, v in _identities(cluster).items() if k in before} == before
    assert _sandbox_ids(cluster) == sandboxes
    page = http_get(f"http://{pod(cluster, 'nginx')['status']['podIP']}/")
    assert "Welcome to nginx!" in page


# -- the end -----------------------------------------------------------------------------


def test_deleting_everything_leaves_nothing(cluster: Cluster) -> None:
    cluster.kubectl("delete", "deployment", "--all", "--wait=false")
    cluster.kubectl("delete", "pods", "--all", "--grace-period=1", f"--timeout={WAIT:.0f}s",
                    timeout=WAIT + 30)  # fmt: skip
    # the kubelet's garbage collector removes a deleted pod's log directory within a minute
    poll("nothing left on the runtime", lambda: not cluster.runtime_leftovers(), timeout=150)
