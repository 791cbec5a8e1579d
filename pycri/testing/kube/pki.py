"""The certificates and kubeconfigs of a throwaway one-node cluster, made with openssl.

One CA signs everything: the API server's serving certificate and a client
certificate per component, each with the user and group the API server's
default RBAC roles expect (``system:kube-scheduler``, ``system:node:<name>``
in ``system:nodes``, ...). The kubelet trusts the same CA for the API
server's calls to it (logs, exec, port-forward). Keys are P-256: fast to
make, and every Kubernetes component takes them. Certificates last two days;
a test cluster lives minutes.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PKI", "Credentials"]

DAYS = "2"
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Credentials:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


class PKI:
    """A CA in ``directory`` and what it signed; files are root's alone (0600)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        self.ca = Credentials(directory / "ca.crt", directory / "ca.key")
        _openssl(
            "req", "-x509", *EC_KEY, "-keyout", str(self.ca.key), "-out", str(self.ca.cert),
            "-days", DAYS, "-subj", "/CN=pycri-test-cluster-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        # the service-account token signing pair
        self.service_account_key = directory / "sa.key"
        self.service_account_pub = directory / "sa.pub"
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout",
                 "-out", str(self.service_account_key))  # fmt: skip
        _openssl("ec", "-in", str(self.service_account_key), "-pubout",
                 "-out", str(self.service_account_pub))  # fmt: skip

    def issue(
        self,
        name: str,
        common_name: str,
        groups: tuple[str, ...] = (),
        *,
        server_names: tuple[str, ...] = (),
        server_ips: tuple[str, ...] = (),
    ) -> Credentials:
        """A certificate for a client (``common_name`` in ``groups``), or a server."""
        creds = Credentials(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        csr = self.directory / f"{name}.csr"
        subject = "".join(f"/O={group}" for group in groups) + f"/CN={common_name}"
        _openssl("req", "-new", *EC_KEY, "-keyout", str(creds.key), "-out", str(csr),
                 "-subj", subject)  # fmt: skip
        usage = "serverAuth" if server_names or server_ips else "clientAuth"
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={usage}",
        ]
        alt = [f"DNS:{n}" for n in server_names] + [f"IP:{ip}" for ip in server_ips]
        if alt:
            lines.append("subjectAltName=" + ",".join(alt))
        extensions = self.directory / f"{name}.ext"
        extensions.write_text("\n".join(lines) + "\n")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca.cert), "-CAkey", str(self.ca.key),
            "-CAcreateserial", "-out", str(creds.cert), "-days", DAYS, "-extfile", str(extensions),
        )  # fmt: skip
        csr.unlink()
        extensions.unlink()
        for path in self.directory.iterdir():
            path.chmod(0o600)
        return creds

    def kubeconfig(self, name: str, server: str, creds: Credentials) -> Path:
        """A kubeconfig for ``creds`` against ``server`` (JSON is YAML)."""
        path = self.directory / f"{name}.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "pycri",
                    "cluster": {"server": server, "certificate-authority": str(self.ca.cert)},
                }
            ],
            "users": [
                {
                    "name": name,
                    "user": {
                        "client-certificate": str(creds.cert),
                        "client-key": str(creds.key),
                    },
                }
            ],
            "contexts": [{"name": "pycri", "context": {"cluster": "pycri", "user": name}}],
            "current-context": "pycri",
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)
        return path
