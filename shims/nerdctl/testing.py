"""Helpers for tests and benchmarks that run the nerdctl shim against real containerd.

The fixtures every nerdctl test module shares are here too; a module takes
those it needs by importing them (pytest finds a fixture by the name it is
given, so the imported names are not used otherwise)::

    from pycri_shims.nerdctl.testing import created_fixture, ready_fixture, shim_fixture

``ready_fixture`` (named ``nerdctl_ready``, autouse) skips, or fails under
PYCRI_REQUIRE_REAL=1, each test of a module on a host without nerdctl,
containerd or the images; ``created_fixture`` (``created``) checks at the
module's end that nothing it tracked is left; ``shim_fixture`` (``shim``)
is a module's TrackingShim.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pycri.api import api_pb2 as cri
from pycri.testing import require_real
from pycri_shims.nerdctl.options import NerdctlOptions
from pycri_shims.nerdctl.runner import NerdctlRunner, Result
from pycri_shims.nerdctl.shim import NerdctlShim

__all__ = [
    "Created",
    "TrackingShim",
    "created_fixture",
    "nerdctl",
    "ready_fixture",
    "shim_fixture",
    "why_unavailable",
]

#: the images setup-runtimes.sh imports into the pycri namespace
REQUIRED_IMAGES = ("docker.io/library/busybox:latest", "registry.k8s.io/pause:3.9")


def nerdctl(*args: str, options: NerdctlOptions | None = None, timeout: float = 60) -> str:
    """Run nerdctl with the shim's global flags; stdout, or AssertionError with stderr."""
    options = options or NerdctlOptions()
    result = subprocess.run(
        [options.nerdctl, *options.global_args(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"nerdctl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def why_unavailable(options: NerdctlOptions | None = None) -> str | None:
    """Why the shim cannot run here (None when nerdctl, containerd and images are ready)."""
    options = options or NerdctlOptions()
    if not (os.access(options.nerdctl, os.X_OK) or shutil.which(options.nerdctl)):
        return f"nerdctl is not installed at {options.nerdctl} (scripts/setup-runtimes.sh)"
    try:
        listed = nerdctl("images", "--format", "json", options=options, timeout=20)
    except (AssertionError, subprocess.TimeoutExpired, OSError) as err:
        return f"containerd is not reachable through nerdctl ({err}); run scripts/setup-runtimes.sh"
    names = {json.loads(line).get("Name") for line in listed.splitlines() if line.strip()}
    missing = [image for image in REQUIRED_IMAGES if image not in names]
    if missing:
        return f"images {missing} are missing in namespace {options.namespace}"
    return None


class Created:
    """Ids of the pods and containers a test module made, to check none is left.

    Tracking ids (rather than comparing the namespace before and after)
    keeps the check right while other test runs share the namespace.
    """

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def add(self, object_id: str) -> str:
        self.ids.add(object_id)
        return object_id

    def left(self, options: NerdctlOptions | None = None) -> dict[str, set[str]]:
        """What of it still exists: containers, their CNI IP allocations, nat rules, CNI caches."""
        options = options or NerdctlOptions()
        existing = set(nerdctl("ps", "-a", "-q", "--no-trunc", options=options).split())
        # CNI knows a pod as "<namespace>-<container id>" (host-local's files, rule comments)
        cni_ids = {f"{options.namespace}-{object_id}" for object_id in self.ids}
        found = {
            "containers": self.ids & existing,
            "ip_allocations": self.ip_allocations(options, cni_ids),
            "nat_rules": self.nat_rules(cni_ids),
            "cni_result_caches": {
                path.name
                for path in _entries(Path("/var/lib/cni/results"))
                if any(f"-{cni_id}-" in path.name for cni_id in cni_ids)
            },
        }
        return {k: v for k, v in found.items() if v}

    @staticmethod
    def ip_allocations(options: NerdctlOptions, cni_ids: set[str]) -> set[str]:
        """host-local's files (``<ip>`` holding ``<cni id>\\n<ifname>``) that name ``cni_ids``."""
        held: set[str] = set()
        for path in _entries(Path("/var/lib/cni/networks") / options.network):
            try:
                owner = path.read_text().split()[0] if path.name[0].isdigit() else ""
            except (OSError, IndexError):
                continue
            if owner in cni_ids:
                held.add(f"{path.name} ({owner[:40]})")
        return held

    @staticmethod
    def nat_rules(cni_ids: set[str]) -> set[str]:
        """nat rules (IPv4 and IPv6) whose comment names one of ``cni_ids``.

        The bridge plugin's masquerade rules and portmap's DNAT rules carry
        ``id: "<cni id>"``; the rules inside their chains do too.
        """
        rules: set[str] = set()
        for binary in ("iptables", "ip6tables"):
            if shutil.which(binary) is None:
                continue
            listing = subprocess.run(
                [binary, "-w", "-t", "nat", "-S"],
                capture_output=True,
                text=True,
                timeout=60,
                check=binary == "iptables",  # a host without IPv6 nat has no such rules
            ).stdout
            for line in listing.splitlines():
                if any(f'id: \\"{cni_id}\\"' in line for cni_id in cni_ids):
                    rules.add(f"{binary}: {line}")
        return rules


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


class _TrackingRunner(NerdctlRunner):
    """Records what a failed ``run``/``create`` left, before the shim removes it by name."""

    def __init__(self, options: NerdctlOptions, created: Created) -> None:
        super().__init__(options.nerdctl, options.global_args(), options.timeout)
        self.created = created

    def run(self, args: Sequence[str], **kwargs: Any) -> Result:
        if list(args[:2]) == ["rm", "-f"] and len(args) == 3:
            found = super().run(["container", "inspect", args[2]], check=False)
            if found.returncode == 0:
                for data in json.loads(found.stdout or "[]"):
                    self.created.add(data["Id"])
        return super().run(args, **kwargs)


class TrackingShim(NerdctlShim):
    """A NerdctlShim that records every pod and container it creates in ``created``.

    Also those a failed RunPodSandbox or CreateContainer made and removed
    again, so what they leave behind (a CNI rule) is found as well.
    """

    def __init__(self, created: Created, options: NerdctlOptions | None = None) -> None:
        options = options or NerdctlOptions()
        super().__init__(options, runner=_TrackingRunner(options, created))
        self.created = created

    def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str) -> str:
        return self.created.add(super().run_pod_sandbox(config, runtime_handler))

    def create_container(
        self,
        pod_id: str,
        config: cri.ContainerConfig,
        sandbox_config: cri.PodSandboxConfig,
    ) -> str:
        return self.created.add(super().create_container(pod_id, config, sandbox_config))


# -- the fixtures every nerdctl test module shares (see the module docstring) -----------


@pytest.fixture(scope="module", autouse=True, name="nerdctl_ready")
def ready_fixture() -> None:
    problem = why_unavailable()
    require_real(problem is None, problem or "")


@pytest.fixture(scope="module", name="created")
def created_fixture(nerdctl_ready: None) -> Iterator[Created]:
    created = Created()
    yield created
    left = created.left()
    assert left == {}, f"pods or containers (or their network state) were left behind: {left}"


@pytest.fixture(scope="module", name="shim")
def shim_fixture(created: Created) -> Iterator[NerdctlShim]:
    shim = TrackingShim(created)
    yield shim
    shim.close()
