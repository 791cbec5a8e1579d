"""pycri-kubelet's commands through click's CliRunner, against the in-process fake runtime."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from pycri.kubelet import Kubelet
from pycri.kubelet.cli import cli
from pycri.kubelet.sync.lock import KubeletLock
from pycri.testing import FakeEndpoint, serve_fake
from pycri.testing.conformance import wait_for

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {disk: ssd}
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, "echo hello from web; sleep 3600"]
  - name: side
    image: busybox
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
"""


class Env:
    def __init__(self, endpoint: FakeEndpoint, tmp: Path) -> None:
        self.endpoint = endpoint
        self.tmp = tmp
        self.environ = {
            "CONTAINER_RUNTIME_ENDPOINT": endpoint.address,
            "PYCRI_KUBELET_ROOT_DIR": str(tmp / "root"),
            "PYCRI_KUBELET_LOG_ROOT": str(tmp / "logs"),
            "PYCRI_KUBELET_NODE_NAME": "node-1",
        }

    def run(self, *args: str, code: int = 0, stdin: str | None = None) -> Result:
        result = CliRunner().invoke(cli, list(args), env=self.environ, input=stdin)
        assert result.exit_code == code, (result.output, result.stderr, result.exception)
        return result


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with serve_fake() as endpoint:
        yield Env(endpoint, tmp_path)


def test_run_get_logs_exec_delete(env: Env) -> None:
    created = env.run(
        "run", "solo", "--image", "busybox", "--image-pull-policy", "IfNotPresent", "--",
        "sh", "-c", "echo hi; sleep 3600",
    )  # fmt: skip
    assert created.stdout == "pod/solo created\n"
    assert "no pycri-kubelet daemon serves" in created.stderr
    table = env.run("get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["solo", "1/1", "Running", "0"]
    wide = env.run("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[1].split()[5:7] == ["10.88.0.2", "node-1"]
    document = json.loads(env.run("get", "pod", "solo", "-o", "json").stdout)
    assert document["kind"] == "Pod"
    assert document["metadata"]["labels"] == {"run": "solo"}
    assert document["status"]["phase"] == "Running"
    assert document["status"]["containerStatuses"][0]["containerID"].startswith("pycri://")
    wait_for(lambda: env.run("logs", "solo").stdout == "hi\n", 5, "the log line")
    done = env.run("exec", "solo", "--", "sh", "-c", "echo out; echo err >&2; exit 3", code=3)
    assert done.stdout == "out\n"
    assert done.stderr == "err\ncommand terminated with exit code 3\n"
    assert env.run("delete", "pod", "solo").stdout == 'pod "solo" deleted\n'
    assert env.run("get", "pods").stderr == "No resources found in default namespace.\n"
    missing = env.run("delete", "pod", "solo", code=1)
    assert missing.stderr == 'error: pods "solo" not found\n'


def test_apply_warns_and_describe_shows_events(env: Env) -> None:
    manifest = env.tmp / "web.yaml"
    manifest.write_text(POD)
    applied = env.run("apply", "-f", str(manifest))
    assert applied.stdout == "pod/web created\n"
    assert f'Warning: {manifest}: pod "web": spec.nodeSelector: ignored' in applied.stderr
    assert env.run("apply", "-f", str(manifest)).stdout == "pod/web unchanged\n"
    text = env.run("describe", "pod", "web").stdout
    assert "Name:             web" in text
    assert "Status:           Running" in text
    assert "Started container app" in text
    assert "Started container side" in text
    assert "Labels:           app=web" in text
    logs = env.run("logs", "web")
    assert logs.stderr == 'Defaulted container "app" out of: app, side\n'
    assert env.run("logs", "web", "-c", "side").stdout == ""
    bad = env.run(
        "apply", "-f", "-", stdin=POD.replace("image: busybox\n", "image: ''\n", 1), code=1
    )
    assert 'pod "web": spec.containers[0].image: required value' in bad.stderr
    listed = yaml.safe_load(env.run("get", "pods", "-o", "yaml").stdout)
    assert listed["kind"] == "List"
    assert listed["items"][0]["metadata"]["name"] == "web"


def test_deployments_scale_and_follow_logs(env: Env) -> None:
    env.run(
        "create", "deployment", "api", "--image", "busybox", "--replicas", "2",
        "--image-pull-policy", "IfNotPresent", "--", "sh", "-c", "echo up; sleep 3600",
    )  # fmt: skip
    names = env.run("get", "pods", "-o", "name").stdout.split()
    assert names == ["pod/api-0", "pod/api-1"]
    assert env.run("get", "deploy").stdout.splitlines()[1].split()[:2] == ["api", "2/2"]
    assert env.run("scale", "deployment/api", "--replicas", "1").stdout == (
        "deployment.apps/api scaled\n"
    )
    assert env.run("get", "pods", "-o", "name").stdout.split() == ["pod/api-0"]
    refused = env.run("scale", "pod/api-0", "--replicas", "2", code=1)
    assert "pods cannot be scaled" in refused.stderr
    env.run(
        "run", "short", "--image", "busybox", "--image-pull-policy", "IfNotPresent",
        "--restart", "Never", "--", "sh", "-c", "echo one; sleep 0.3; echo two",
    )  # fmt: skip
    followed = env.run("logs", "short", "-f")
    assert followed.stdout == "one\ntwo\n"
    env.run("delete", "deployment", "api")
    assert env.run("get", "pods", "-o", "name").stdout.split() == ["pod/short"]


def test_with_a_daemon_commands_only_edit_manifests(env: Env) -> None:
    root = env.tmp / "root"
    lock = KubeletLock(root / "kubelet.lock")
    assert lock.acquire()  # as `pycri-kubelet serve` does
    kubelet = Kubelet(
        env.endpoint.client,
        manifest_dir=root / "manifests",
        root_dir=root,
        log_root=env.tmp / "logs",
        node_name="node-1",
        sync_period=0.05,
    )
    stop = threading.Event()
    daemon = threading.Thread(target=kubelet.run_forever, args=(stop,))
    daemon.start()
    try:
        created = env.run(
            "run", "web", "--image", "busybox", "--image-pull-policy", "IfNotPresent",
            "--wait", "10", "--", "sleep", "3600",
        )  # fmt: skip
        assert "no pycri-kubelet daemon" not in created.stderr
        assert env.run("get", "pods").stdout.splitlines()[1].split()[:3] == [
            "web",
            "1/1",
            "Running",
        ]
        refused = env.run("sync", code=1)
        assert "daemon serves" in refused.stderr
        deleted = env.run("delete", "pod", "web", "--grace-period", "1")
        assert deleted.stdout == 'pod "web" deleted\n'
        assert env.endpoint.client.list_pod_sandbox().items == []
        # a replica comes back after its deletion, as with a ReplicaSet
        env.run(
            "create", "deployment", "api", "--image", "busybox", "--image-pull-policy",
            "IfNotPresent", "--wait", "10", "--", "sleep", "3600",
        )  # fmt: skip
        first = env.endpoint.client.list_pod_sandbox().items[0].id
        env.run("delete", "pod", "api-0")
        wait_for(lambda: "1/1" in env.run("get", "pods").stdout, 10, "api-0 to come back")
        assert [p.id for p in env.endpoint.client.list_pod_sandbox().items] != [first]
    finally:
        stop.set()
        daemon.join(10)
        kubelet.close()
        lock.release()


def test_serve_runs_until_sigterm(env: Env) -> None:
    manifests = env.tmp / "root" / "manifests"
    manifests.mkdir(parents=True)
    (manifests / "web.yaml").write_text(POD)
    process = subprocess.Popen(
        [sys.executable, "-m", "pycri.kubelet", "serve", "--sync-period", "0.2"],
        env={**os.environ, **env.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: "2/2" in env.run("get", "pods").stdout, 15, "the daemon to run web")
        saved = json.loads((env.tmp / "root" / "kubelet.json").read_text())
        assert saved["endpoint"] == env.endpoint.address
        assert saved["node_name"] == "node-1"
        second = env.run("serve", code=1)
        assert "another pycri-kubelet daemon serves" in second.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "signal 15: stopping" in stderr
    time.sleep(0)  # the pods outlive the daemon, as with the kubelet
    assert len(env.endpoint.client.list_pod_sandbox().items) == 1
