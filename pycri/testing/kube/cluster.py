"""A one-node Kubernetes cluster on loopback whose kubelet runs pods through a CRI endpoint.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler on
127.0.0.1 (free ports), and one kubelet registered as a Node whose
``containerRuntimeEndpoint`` is, by ``runtime``:

* ``docker``: ``pycri-server --shim docker`` on a private dockerd
  (private_dockerd.py says why it must be private);
* ``nerdctl``: ``pycri-server --shim nerdctl`` in a containerd namespace of
  its own;
* ``containerd``: containerd's own CRI plugin, the reference.

Everything lives under one directory; ``down`` deletes the workloads through
the API, stops the components, removes what the kubelet left (mounts, the
directories it creates whatever its flags say) and reports what could not be
cleaned. The binaries come from ``scripts/setup-kubernetes.sh``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.testing.kube.daemon import Daemon, free_port, wait_until
from pycri.testing.kube.pki import PKI
from pycri.testing.kube.private_dockerd import PrivateDockerd

__all__ = ["RUNTIMES", "Cluster"]

RUNTIMES = ("docker", "nerdctl", "containerd")
CONTAINERD_CRI = "unix:///run/containerd/containerd.sock"
SERVICE_CIDR = "10.96.0.0/24"
#: the node's address, on an empty bridge of the host's own (the VMs have no dummy
#: driver): the kubelet refuses a loopback node IP, and listening on a real
#: interface would open it to the network
NODE_LINK = "pycri-node0"
NODE_IP = "10.244.90.1"
#: what the kubelet creates outside its --root-dir (removed at down if absent at up)
KUBELET_HOST_PATHS = (Path("/var/lib/kubelet"), Path("/var/log/containers"))
#: the kubelet's feature gates: its stats come from the CRI (#15), not cAdvisor
KUBELET_FEATURE_GATES = {"PodAndContainerStatsFromCRI": True}


def default_bin_dir() -> Path:
    """Where scripts/setup-kubernetes.sh builds (``$PYCRI_K8S_BIN`` overrides)."""
    configured = os.environ.get("PYCRI_K8S_BIN")
    if configured:
        return Path(configured)
    version = os.environ.get("PYCRI_K8S_VERSION", "v1.34.4")
    cache = Path(os.environ.get("PYCRI_K8S_CACHE", "/var/cache/pycri-ci/kubernetes"))
    return cache / version / "bin"


class Cluster:
    """Bring up with ``up()`` (or ``with Cluster(...) as cluster``), end with ``down()``."""

    def __init__(
        self,
        runtime: str,
        directory: Path,
        *,
        bin_dir: Path | None = None,
        node_name: str = "pycri-node",
        nerdctl_namespace: str = "pycri-k8s",
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        self.runtime = runtime
        self.dir = directory
        self.bin = bin_dir or default_bin_dir()
        self.node = node_name
        self.nerdctl_namespace = nerdctl_namespace
        self.ports = {
            name: free_port()
            for name in ("etcd", "etcd-peer", "apiserver", "kubelet", "kubelet-healthz",
                         "scheduler", "controller-manager")
        }  # fmt: skip
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        self.daemons: dict[str, Daemon] = {}
        self.dockerd: PrivateDockerd | None = None
        self.endpoint = ""  # the kubelet's CRI endpoint, once the runtime is up
        self._images_before: set[str] = set()
        self._images_known = False  # never remove images without knowing what was there
        self.pki: PKI | None = None
        self._created_host_paths: list[Path] = []
        self._started_ns = time.time_ns()

    # -- bring-up ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self, timeout: float = 120.0) -> None:
        missing = [n for n in self._binaries() if not (self.bin / n).exists()]
        if missing:
            raise FileNotFoundError(
                f"{', '.join(missing)} not in {self.bin}: run scripts/setup-kubernetes.sh"
            )
        self._created_host_paths = [p for p in KUBELET_HOST_PATHS if not p.exists()]
        self._started_ns = time.time_ns()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        try:
            self._add_node_address()
            self._up(timeout)
        except BaseException:
            self.down()
            raise

    @staticmethod
    def _add_node_address() -> None:
        def ip(*args: str) -> None:
            subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

        if not Path(f"/sys/class/net/{NODE_LINK}").exists():
            ip("link", "add", NODE_LINK, "type", "bridge")
        ip("addr", "replace", f"{NODE_IP}/32", "dev", NODE_LINK)
        ip("link", "set", NODE_LINK, "up")

    def _binaries(self) -> list[str]:
        return ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                "kubelet", "kubectl"]  # fmt: skip

    def _up(self, timeout: float) -> None:
        pki = self.pki = PKI(self.dir / "pki")
        self._start_etcd(timeout)
        self._start_apiserver(pki, timeout)
        self.kubeconfig = pki.kubeconfig(
            "admin", self.server, pki.issue("admin", "pycri-admin", ("system:masters",))
        )
        self._start(
            "kube-controller-manager",
            "--kubeconfig", str(pki.kubeconfig("controller-manager", self.server,
                                               pki.issue("controller-manager",
                                                         "system:kube-controller-manager"))),
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['controller-manager']}",
            "--leader-elect=false",
            f"--root-ca-file={pki.ca.cert}",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        )  # fmt: skip
        self._start(
            "kube-scheduler",
            "--kubeconfig", str(pki.kubeconfig("scheduler", self.server,
                                               pki.issue("scheduler", "system:kube-scheduler"))),
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['scheduler']}",
            "--leader-elect=false",
        )  # fmt: skip
        self.endpoint = self._start_runtime(timeout)
        self._images_before = self._image_ids()
        self._images_known = True
        self._start_kubelet(pki)
        wait_until(f"node {self.node}", self._node_ready, timeout, log=self.daemons["kubelet"].log)
        # the default service account appears shortly after the namespace; pods need it
        wait_until("default service account", self._default_service_account, timeout)

    def _start(self, name: str, *args: str) -> Daemon:
        daemon = Daemon(name, [str(self.bin / name), *args], self.dir / f"{name}.log")
        self.daemons[name] = daemon
        daemon.start()
        return daemon

    def _start_etcd(self, timeout: float) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        daemon = self._start(
            "etcd",
            "--name", "pycri", "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"pycri={peer}",
            # a test cluster's data dies with it
            "--unsafe-no-fsync",
        )  # fmt: skip
        wait_until(
            "etcd", lambda: self._http_ok(f"{client}/health", daemon), timeout, log=daemon.log
        )

    def _start_apiserver(self, pki: PKI, timeout: float) -> None:
        serving = pki.issue(
            "apiserver",
            "kube-apiserver",
            server_names=("localhost", "kubernetes", "kubernetes.default",
                          "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"),
            server_ips=("127.0.0.1", "10.96.0.1"),
        )  # fmt: skip
        kubelet_client = pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                   ("system:masters",))  # fmt: skip
        daemon = self._start(
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--client-ca-file={pki.ca.cert}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--authorization-mode=Node,RBAC",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            f"--kubelet-certificate-authority={pki.ca.cert}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=false",
        )  # fmt: skip
        admin = pki.issue("readyz", "pycri-readyz", ("system:masters",))
        context = ssl.create_default_context(cafile=str(pki.ca.cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        wait_until(
            "kube-apiserver",
            lambda: self._http_ok(f"{self.server}/readyz", daemon, context),
            timeout,
            log=daemon.log,
        )

    @staticmethod
    def _http_ok(url: str, daemon: Daemon, context: ssl.SSLContext | None = None) -> bool:
        daemon.check()
        if not url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
            raise ValueError(f"not a loopback URL: {url}")
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as answer:  # noqa: S310
                return bool(answer.status == 200)
        except OSError:
            return False

    def _start_runtime(self, timeout: float) -> str:
        if self.runtime == "containerd":
            return CONTAINERD_CRI
        options: dict[str, str] = {}
        if self.runtime == "docker":
            self.dockerd = PrivateDockerd(self.dir / "dockerd")
            self.dockerd.start(timeout)
            options = {"docker_host": self.dockerd.url, "state_dir": str(self.dir / "pycri-docker")}
        else:
            options = {"namespace": self.nerdctl_namespace}
        argv = [sys.executable, "-m", "pycri.server.main", "--shim", self.runtime]
        for key, value in options.items():
            argv += ["-O", f"{key}={value}"]
        sock = self.dir / "pycri.sock"
        argv += ["--listen", f"unix://{sock}"]
        daemon = Daemon("pycri-server", argv, self.dir / "pycri-server.log")
        self.daemons["pycri-server"] = daemon
        self._pycri_socket = sock
        self.start_pycri_server(timeout)
        return f"unix://{sock}"

    def start_pycri_server(self, timeout: float = 60.0) -> None:
        """(Re)start pycri-server and wait until it answers."""
        daemon = self.daemons["pycri-server"]
        self._pycri_socket.unlink(missing_ok=True)
        daemon.start()

        def listening() -> bool:
            daemon.check()
            return self._pycri_socket.exists()

        wait_until("pycri-server", listening, timeout, log=daemon.log)
        client = CRIClient(f"unix://{self._pycri_socket}", timeout=timeout)
        try:
            client.wait_ready()
        finally:
            client.close()

    def _start_kubelet(self, pki: PKI) -> None:
        node = pki.issue("kubelet", f"system:node:{self.node}", ("system:nodes",))
        serving = pki.issue("kubelet-serving", self.node, server_names=(self.node,),
                            server_ips=(NODE_IP,))  # fmt: skip
        root = self.dir / "kubelet"
        root.mkdir(exist_ok=True)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": self.ports["kubelet"],
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.ports["kubelet-healthz"],
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            # only the API server (a client certificate of the cluster's CA) may call in
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(pki.ca.cert)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": self.endpoint,
            "imageServiceEndpoint": self.endpoint,
            "podLogsDir": str(self.dir / "pod-logs"),
            "volumePluginDir": str(self.dir / "volume-plugins"),
            "featureGates": KUBELET_FEATURE_GATES,
            # the build machines: cgroup v1, no CAP_SYS_RESOURCE, a shared host
            "failSwapOn": False,
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "localStorageCapacityIsolation": False,
            "protectKernelDefaults": False,
            # no KUBE-FIREWALL: it drops non-local traffic to 127/8 on the whole host
            "makeIPTablesUtilChains": False,
            "oomScoreAdj": 0,
            # never garbage-collect images other users of the runtime rely on
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {},
            "resolvConf": "/etc/resolv.conf",
            "syncFrequency": "10s",
            "fileCheckFrequency": "5s",
            "nodeStatusReportFrequency": "10s",
            "shutdownGracePeriod": "0s",
        }
        config_path = self.dir / "kubelet-config.json"
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        kubeconfig = pki.kubeconfig("kubelet", self.server, node)
        self._start(
            "kubelet",
            f"--config={config_path}", f"--kubeconfig={kubeconfig}",
            f"--hostname-override={self.node}", f"--node-ip={NODE_IP}",
            f"--root-dir={root}", "--v=2",
        )  # fmt: skip

    def restart_kubelet(self) -> None:
        """Stop the kubelet and start it again with the same flags."""
        kubelet = self.daemons["kubelet"]
        kubelet.stop()
        kubelet.start()

    def _node_ready(self) -> bool:
        self.daemons["kubelet"].check()
        result = self.kubectl("get", "node", self.node, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _default_service_account(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0

    # -- use ---------------------------------------------------------------------------

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl --kubeconfig <admin> ARGS``; CalledProcessError carries stderr."""
        result = subprocess.run(
            [str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def kubectl_argv(self, *args: str) -> list[str]:
        return [str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]

    @contextlib.contextmanager
    def cri(self) -> Iterator[CRIClient]:
        client = CRIClient(self.endpoint, timeout=60)
        try:
            yield client
        finally:
            client.close()

    def runtime_leftovers(self) -> dict[str, list[str]]:
        """Sandboxes and containers on the kubelet's endpoint, log directories of pods."""
        with self.cri() as client:
            pods = client.list_pod_sandbox(cri.ListPodSandboxRequest()).items
            containers = client.list_containers(cri.ListContainersRequest()).containers
        logs = self.dir / "pod-logs"
        found = {
            "sandboxes": [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods],
            "containers": [c.metadata.name for c in containers],
            "pod log directories": sorted(p.name for p in logs.iterdir()) if logs.exists() else [],
        }
        return {kind: names for kind, names in found.items() if names}

    # -- tear-down ---------------------------------------------------------------------

    def down(self, timeout: float = 120.0) -> None:
        """Delete the workloads, stop everything, remove what was made; idempotent."""
        kubelet = self.daemons.get("kubelet")
        if kubelet is not None and kubelet.running and "kube-apiserver" in self.daemons:
            with contextlib.suppress(Exception):
                self._delete_workloads(timeout)
        for name in ("kubelet", "kube-scheduler", "kube-controller-manager"):
            if name in self.daemons:
                self.daemons[name].stop()
        if self.endpoint:
            with contextlib.suppress(Exception):
                self._remove_what_the_kubelet_left()
            with contextlib.suppress(Exception):
                self._remove_pulled_images()
        for name in ("pycri-server", "kube-apiserver", "etcd"):
            if name in self.daemons:
                self.daemons[name].stop()
        if self.runtime == "nerdctl":  # refused while containerd still holds anything in it
            subprocess.run(["ctr", "namespaces", "remove", self.nerdctl_namespace],
                           capture_output=True, timeout=60)  # fmt: skip
        if self.dockerd is not None:
            self.dockerd.stop()
        subprocess.run(["ip", "link", "delete", NODE_LINK], capture_output=True, timeout=30)
        self._unmount_under(self.dir)
        for path in self._created_host_paths:
            self._unmount_under(path)
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _delete_workloads(self, timeout: float) -> None:
        namespaces = [
            item["metadata"]["name"] for item in self.kubectl_json("get", "namespaces")["items"]
        ]
        for namespace in namespaces:
            self.kubectl("delete", "all", "--all", "-n", namespace, "--wait=false", check=False)
        self.kubectl("delete", "pods", "--all", "-A", "--grace-period=1", "--wait=false",
                     check=False)  # fmt: skip
        # the kubelet stops each pod's sandbox once its API object is gone (and
        # removes it only at its next garbage collection, up to a minute later)
        ready = cri.PodSandboxFilter(state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = self.kubectl_json("get", "pods", "-A")["items"]
            with self.cri() as client:
                running = client.list_pod_sandbox(cri.ListPodSandboxRequest(filter=ready)).items
            if not pods and not running:
                return
            time.sleep(1)

    def _remove_what_the_kubelet_left(self) -> None:
        """The sandboxes this cluster's kubelet made and did not remove (yet).

        On containerd's CRI, which other clients share, only those created since
        this cluster started and carrying the kubelet's pod labels.
        """
        with self.cri() as client:
            for pod in client.list_pod_sandbox(cri.ListPodSandboxRequest()).items:
                if self.runtime == "containerd" and not (
                    pod.created_at >= self._started_ns and "io.kubernetes.pod.uid" in pod.labels
                ):
                    continue
                client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
                client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))

    def _image_ids(self) -> set[str]:
        with self.cri() as client:
            return {image.id for image in client.list_images(cri.ListImagesRequest()).images}

    def _remove_pulled_images(self) -> None:
        """The images pulled while the cluster ran: the next cluster starts on a bare node."""
        if not self._images_known:
            return
        with self.cri() as client:
            for image_id in self._image_ids() - self._images_before:
                client.remove_image(cri.RemoveImageRequest(image=cri.ImageSpec(image=image_id)))

    @staticmethod
    def _unmount_under(root: Path) -> None:
        """Every mount point at or below ``root``, deepest first (the kubelet leaves some)."""
        prefix = str(root)
        points = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
        for point in sorted(set(points), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
