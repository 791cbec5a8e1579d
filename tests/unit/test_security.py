"""Transport security and the privilege policy."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import ClientTLS, CRIClient
from pycri.core.runtime import CRIRuntime
from pycri.errors import PermissionDeniedError, UnavailableError
from pycri.server.server import CRIServer, ServerTLS
from pycri.testing import require_real
from pycri_shims.fake import FakeShim


@pytest.fixture(scope="module", autouse=True)
def _needs_openssl() -> None:
    require_real(shutil.which("openssl") is not None, "needs openssl")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server cert for 127.0.0.1 and a client cert, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))  # fmt: skip
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))  # fmt: skip
        ext = d / f"{name}.ext"
        ext.write_text(extra + "\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "1",
                 "-extfile", str(ext), "-out", str(d / f"{name}.pem"))  # fmt: skip
    return d


def test_tls(pki: Path) -> None:
    tls = ServerTLS(pki / "server.pem", pki / "server.key")
    with CRIServer(CRIRuntime(FakeShim()), "tcp://127.0.0.1:0", tls=tls) as server:
        with CRIClient(server.address, tls=ClientTLS(pki / "ca.pem")) as client:
            assert client.version().runtime_name == "pycri"
        with (
            CRIClient(server.address, timeout=3) as plain,
            pytest.raises(UnavailableError),
        ):
            plain.version()


def test_mutual_tls_requires_a_client_cert(pki: Path) -> None:
    tls = ServerTLS(pki / "server.pem", pki / "server.key", client_ca=pki / "ca.pem")
    with CRIServer(CRIRuntime(FakeShim()), "tcp://127.0.0.1:0", tls=tls) as server:
        mutual = ClientTLS(pki / "ca.pem", cert=pki / "client.pem", key=pki / "client.key")
        with CRIClient(server.address, tls=mutual) as client:
            assert client.version().runtime_name == "pycri"
        with (
            CRIClient(server.address, tls=ClientTLS(pki / "ca.pem"), timeout=3) as anonymous,
            pytest.raises(UnavailableError),
        ):
            anonymous.version()


def test_tls_on_unix_socket_is_refused(pki: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TLS applies to tcp"):
        CRIServer(
            CRIRuntime(FakeShim()),
            f"unix://{tmp_path / 's.sock'}",
            tls=ServerTLS(pki / "server.pem", pki / "server.key"),
        )


def test_socket_group(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    path = tmp_path / "cri.sock"
    with CRIServer(CRIRuntime(FakeShim()), f"unix://{path}", socket_group=group):
        assert os.lstat(path).st_gid == os.getgid()
    with pytest.raises(ValueError, match="does not exist"):
        CRIServer(CRIRuntime(FakeShim()), f"unix://{path}", socket_group="no-such-group-x")


def _pod(**context: object) -> cri.RunPodSandboxRequest:
    return cri.RunPodSandboxRequest(
        config=cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name="p", namespace="n", uid="u"),
            linux=cri.LinuxPodSandboxConfig(
                security_context=cri.LinuxSandboxSecurityContext(**context)  # type: ignore[arg-type]
            ),
        )
    )


@pytest.mark.parametrize(
    ("context", "fragment"),
    [
        ({"privileged": True}, "privileged is refused"),
        ({"namespace_options": cri.NamespaceOption(network=cri.NODE)}, "host network"),
        ({"namespace_options": cri.NamespaceOption(pid=cri.NODE, ipc=cri.NODE)}, "host pid/ipc"),
    ],
)
def test_privileges_refused_unless_allowed(context: dict[str, object], fragment: str) -> None:
    strict = CRIRuntime(FakeShim())
    with pytest.raises(PermissionDeniedError, match=fragment):
        strict.run_pod_sandbox(_pod(**context))
    assert not strict.list_pod_sandbox(cri.ListPodSandboxRequest()).items
    strict.close()
    relaxed = CRIRuntime(FakeShim(), allow_privileged=True)
    assert relaxed.run_pod_sandbox(_pod(**context)).pod_sandbox_id
    relaxed.close()


def test_privileged_container_refused() -> None:
    runtime = CRIRuntime(FakeShim())
    pod_id = runtime.run_pod_sandbox(_pod()).pod_sandbox_id
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="c"),
        image=cri.ImageSpec(image="busybox"),
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(privileged=True)
        ),
    )
    with pytest.raises(PermissionDeniedError, match="--allow-privileged"):
        runtime.create_container(cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=config))
    runtime.close()
