"""The pieces of the one-node cluster harness that need no Kubernetes (pycri.testing.kube)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pycri.testing import require_real
from pycri.testing.kube import Cluster
from pycri.testing.kube.daemon import Daemon, wait_until
from pycri.testing.kube.pki import PKI

needs_openssl = pytest.mark.usefixtures("openssl")


@pytest.fixture
def openssl() -> None:
    require_real(shutil.which("openssl") is not None, "no openssl")


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


@needs_openssl
def test_client_certificates_carry_the_user_and_groups_rbac_expects(tmp_path: Path) -> None:
    pki = PKI(tmp_path / "pki")
    node = pki.issue("kubelet", "system:node:pycri-node", ("system:nodes",))
    assert _openssl("verify", "-CAfile", str(pki.ca.cert), str(node.cert)).strip().endswith("OK")
    subject = _openssl("x509", "-in", str(node.cert), "-noout", "-subject", "-ext",
                       "extendedKeyUsage")  # fmt: skip
    assert "O = system:nodes, CN = system:node:pycri-node" in subject
    assert "TLS Web Client Authentication" in subject
    assert {p.stat().st_mode & 0o777 for p in pki.directory.iterdir()} == {0o600}
    assert pki.directory.stat().st_mode & 0o777 == 0o700


@needs_openssl
def test_a_serving_certificate_names_its_addresses(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    serving = pki.issue("apiserver", "kube-apiserver", server_names=("kubernetes.default",),
                        server_ips=("127.0.0.1",))  # fmt: skip
    text = _openssl("x509", "-in", str(serving.cert), "-noout", "-ext",
                    "subjectAltName,extendedKeyUsage")  # fmt: skip
    assert "DNS:kubernetes.default" in text
    assert "IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication" in text


@needs_openssl
def test_a_kubeconfig_points_at_the_server_with_the_credentials(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    creds = pki.issue("admin", "admin", ("system:masters",))
    config = json.loads(pki.kubeconfig("admin", "https://127.0.0.1:6443", creds).read_text())
    assert config["clusters"][0]["cluster"] == {
        "server": "https://127.0.0.1:6443",
        "certificate-authority": str(pki.ca.cert),
    }
    assert config["users"][0]["user"]["client-key"] == str(creds.key)


def test_stop_ends_the_daemon_and_the_children_it_left(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        f"open({str(child_pid)!r}, 'w').write(str(c.pid)); time.sleep(600)"
    )
    daemon = Daemon("sleeper", [sys.executable, "-c", script], tmp_path / "log")
    daemon.start()
    wait_until("the child", lambda: child_pid.exists() and child_pid.read_text() != "", 30)
    pid = int(child_pid.read_text())
    daemon.stop(timeout=10)
    assert not daemon.running
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # reaped by init once killed
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else ""
    )
    assert state in ("", "Z"), f"child {pid} still running"


def test_a_daemon_that_exits_says_so_with_its_log(tmp_path: Path) -> None:
    daemon = Daemon("failing", [sys.executable, "-c", "print('no config'); raise SystemExit(3)"],
                    tmp_path / "log")  # fmt: skip
    daemon.start()

    def never_ready() -> bool:
        daemon.check()
        return False

    with pytest.raises(RuntimeError, match=r"failing exited with 3(.|\n)*no config"):
        wait_until("failing", never_ready, 30)


def test_an_unknown_runtime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="runtime must be one of docker, nerdctl, containerd"):
        Cluster("cri-o", tmp_path)


def test_missing_binaries_name_the_script_that_builds_them(tmp_path: Path) -> None:
    cluster = Cluster("docker", tmp_path / "c", bin_dir=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"scripts/setup-kubernetes\.sh"):
        cluster.up()
    assert not (tmp_path / "c").exists()
