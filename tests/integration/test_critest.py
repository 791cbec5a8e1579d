"""critest, the CRI conformance suite, gates every engine shim (docs/conformance.md).

For each engine shim, pycri-server runs on a temporary socket and critest
(built by scripts/setup-critest.sh, images served offline) runs against it;
containerd's own CRI runs the same suite as the reference. The specs that
passed are held against ``critest/<target>.expected``: an expected spec that
did not pass fails the test, named with its failure; a newly passing one is
reported, and the whole passed list is written to the report directory, ready
to be copied over the expected list.

After each run the test looks for what the run left behind: critest's pods
and containers in the engine, their CNI NAT rules and IP allocations (both
only by ids and names of this run, since other tests share the daemons), and
the SysV shared memory segments critest's HostIpc specs create on the host
(those are critest's own, removed without failing the test).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import CRIError
from pycri.testing import engine_shims, require_real, require_shim
from pycri.testing.critest import CritestRun, compare, find_critest, read_spec_list, run_critest
from pycri.testing.critest_endpoints import (
    CONTAINERD_SOCK,
    CRITEST_POD_NAMESPACE,
    REFERENCE,
    SANDBOX_IMAGE,
    critest_endpoint,
    pull_sandbox_image,
)

pytestmark = [pytest.mark.real, pytest.mark.slow]

EXPECTED_DIR = Path(__file__).parent / "critest"
#: the nerdctl shim's namespace during critest, so that critest removing
#: images (the sandbox image too) leaves the test suite's namespace alone
NERDCTL_NAMESPACE = "pycri-critest"
#: images the rest of the test suite relies on (scripts/setup-runtimes.sh);
#: critest pulls and removes them where it runs, they are put back afterwards
DOCKER_KEPT = ("busybox:latest", SANDBOX_IMAGE)
CONTAINERD_KEPT = ("docker.io/library/busybox:latest", SANDBOX_IMAGE)
#: ginkgo's limit for one suite; a run takes 1 to 4 minutes here
SUITE_SECONDS = 12 * 60
#: the same spec order every run (ginkgo shuffles with a new seed otherwise)
SEED = 1
CNI_STATE = Path("/var/lib/cni/networks")
#: what critest's HostIpc specs make on the host with `ipcmk -M 1048576`
CRITEST_SHM_BYTES = 1048576

TARGETS = [*engine_shims(), REFERENCE]


def _run(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


# ------------------------------------------------------------ engine state --
class KeptImages:
    """Save some images of an engine before critest and put them back after.

    ``engine`` is ``docker`` or a containerd namespace (through ``ctr``).
    Only references whose image changed or went away are restored.
    """

    def __init__(self, engine: str, refs: tuple[str, ...], tmp: Path) -> None:
        self.engine = engine
        self.refs = refs
        self.archive = tmp / f"kept-{engine}.tar"
        self.before = self._ids()
        self.names_before = self._names() if engine != "docker" else set()
        missing = [ref for ref in refs if ref not in self.before]
        assert not missing, f"{engine} lacks {missing}: run scripts/setup-runtimes.sh"
        if engine == "docker":
            _run("docker", "save", "-o", str(self.archive), *refs)
        else:
            _run("ctr", "-n", engine, "images", "export", str(self.archive), *refs)

    def _ids(self) -> dict[str, str]:
        ids = {}
        if self.engine == "docker":
            for ref in self.refs:
                done = subprocess.run(
                    ["docker", "image", "inspect", "-f", "{{.Id}}", ref],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode == 0:
                    ids[ref] = done.stdout.strip()
        else:
            for line in _run("ctr", "-n", self.engine, "images", "ls").splitlines()[1:]:
                fields = line.split()
                if fields and fields[0] in self.refs:
                    ids[fields[0]] = fields[2]  # REF TYPE DIGEST ...
        return ids

    def _names(self) -> set[str]:
        return {
            fields[0]
            for fields in map(
                str.split, _run("ctr", "-n", self.engine, "images", "ls").splitlines()[1:]
            )
            if fields
        }

    def _drop_nameless(self) -> None:
        """Remove images the run left with digest names only (the CRI lists them
        nameless; crictl's sort of images is no total order with them, which the
        pycrictl differential test trips over)."""
        rows = [
            fields
            for fields in map(
                str.split, _run("ctr", "-n", self.engine, "images", "ls").splitlines()[1:]
            )
            if fields
        ]
        tagged = {fields[2] for fields in rows if "sha256:" not in fields[0]}
        stale = [
            fields[0]
            for fields in rows
            if "sha256:" in fields[0]
            and fields[0] not in self.names_before
            and fields[2] not in tagged
        ]
        if stale:
            _run("ctr", "-n", self.engine, "images", "rm", *stale)

    def restore(self) -> list[str]:
        """Put back what changed; returns the references restored."""
        after = self._ids()
        changed = [ref for ref in self.refs if after.get(ref) != self.before[ref]]
        if self.engine != "docker":
            self._drop_nameless()
        if not changed:
            return []
        if self.engine == "docker":
            _run("docker", "load", "-q", "-i", str(self.archive))
            # the copies critest pulled in their place, now untagged
            for ref in changed:
                if ref in after:
                    subprocess.run(["docker", "rmi", after[ref]], capture_output=True, check=False)
        else:
            _run("ctr", "-n", self.engine, "images", "import", str(self.archive))
            # the images critest pulled in their place are left only under digest
            # names (repo@sha256:..., the CRI's sha256:<id>): nameless images a
            # node of this suite never had (crictl's sort of images is not a total
            # order with them, which the pycrictl differential test trips over)
            replaced = {after[ref] for ref in changed if ref in after}
            stale = [
                fields[0]
                for fields in map(
                    str.split, _run("ctr", "-n", self.engine, "images", "ls").splitlines()[1:]
                )
                if fields and fields[2] in replaced and "sha256:" in fields[0]
            ]
            if stale:
                _run("ctr", "-n", self.engine, "images", "rm", *stale)
        again = self._ids()
        assert all(again.get(ref) == self.before[ref] for ref in self.refs), (
            f"could not restore {changed} in {self.engine}: {again} != {self.before}"
        )
        return changed


class SandboxWatch:
    """The ids of critest's pods, seen by listing the endpoint while it runs."""

    def __init__(self, endpoint: str, interval: float = 0.2) -> None:
        self.ids: set[str] = set()
        self._endpoint = endpoint
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="critest-pods", daemon=True)

    def _watch(self) -> None:
        with CRIClient(self._endpoint, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    pods = list(client.list_pod_sandbox(cri.ListPodSandboxRequest()).items)
                except CRIError:
                    pods = []
                for pod in pods:
                    if pod.metadata.namespace.startswith(CRITEST_POD_NAMESPACE):
                        self.ids.add(pod.id)
                self._stop.wait(self._interval)

    def __enter__(self) -> SandboxWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


_CNI_ID = re.compile(r'id: \\"([^"\\]+)\\"')


def cni_state() -> dict[str, str]:
    """CNI's NAT rules and host-local IP allocations: description -> CNI container id."""
    state = {}
    for rule in _run("iptables", "-w", "-t", "nat", "-S").splitlines():
        match = _CNI_ID.search(rule)
        if match:
            state[f"nat rule: {rule}"] = match.group(1)
    for allocation in CNI_STATE.glob("*/*"):
        try:
            owner = allocation.read_text().split("\n", 1)[0].strip()
        except (OSError, UnicodeDecodeError):
            continue
        if owner:
            state[f"IP allocation: {allocation} ({owner})"] = owner
    return state


def cni_leaks(before: dict[str, str], is_ours: Callable[[str], bool]) -> list[str]:
    """What CNI state appeared since ``before`` and belongs to CNI ids ``is_ours``."""
    after = cni_state()
    return sorted(what for what, owner in after.items() if what not in before and is_ours(owner))


def shm_segments() -> dict[str, tuple[int, int]]:
    """SysV shared memory segments of the host: id -> (bytes, attached)."""
    segments = {}
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    for line in lines:
        fields = line.split()  # key shmid perms size cpid lpid nattch ...
        segments[fields[1]] = (int(fields[3]), int(fields[6]))
    return segments


def remove_critest_shm(before: dict[str, tuple[int, int]]) -> list[str]:
    """Remove the segments critest's HostIpc specs made (1 MiB, unattached, new)."""
    removed = []
    for shmid, (size, attached) in shm_segments().items():
        if shmid not in before and size == CRITEST_SHM_BYTES and attached == 0:
            subprocess.run(["ipcrm", "-m", shmid], capture_output=True, check=False)
            removed.append(shmid)
    return removed


def leaked_pods(endpoint: str, seen: set[str]) -> list[str]:
    """critest's pods and containers the endpoint still lists, removed after listing."""
    leaks = []
    with CRIClient(endpoint, timeout=60) as client:
        pods = [
            pod
            for pod in client.list_pod_sandbox(cri.ListPodSandboxRequest()).items
            if pod.metadata.namespace.startswith(CRITEST_POD_NAMESPACE)
        ]
        ours = seen | {pod.id for pod in pods}
        for container in client.list_containers(cri.ListContainersRequest()).containers:
            if container.pod_sandbox_id in ours:
                leaks.append(f"container {container.id[:13]} {container.metadata.name}")
        for pod in pods:
            leaks.append(f"pod {pod.id[:13]} {pod.metadata.namespace}/{pod.metadata.name}")
            # listed above; removed so that later tests start clean
            try:
                client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
                client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
            except CRIError:
                pass
    return leaks


def engine_leftovers(target: str) -> list[str]:
    """critest's containers as the engine itself lists them."""
    if target == "docker":
        out = _run("docker", "ps", "-a", "--format", "{{.ID}} {{.Names}}")
        return [
            f"docker container {line}" for line in out.splitlines() if CRITEST_POD_NAMESPACE in line
        ]
    if target == "nerdctl":
        out = _run("ctr", "-n", NERDCTL_NAMESPACE, "containers", "ls", "-q")
        return [f"containerd container {NERDCTL_NAMESPACE}/{cid}" for cid in out.split()]
    if target != REFERENCE:
        return []  # a shim registered by someone else: only the CRI's own lists are checked
    out = _run(
        "ctr",
        "-n",
        "k8s.io",
        "containers",
        "ls",
        "-q",
        f'labels."io.kubernetes.pod.namespace"~=^{CRITEST_POD_NAMESPACE}',
    )
    return [f"containerd container k8s.io/{cid}" for cid in out.split()]


# ------------------------------------------------------------- endpoints ---
def report_dir(target: str, tmp_path: Path) -> Path:
    base = os.environ.get("PYCRI_CRITEST_REPORTS")
    path = Path(base) / target if base else tmp_path / "report"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_passed(run: CritestRun, target: str) -> Path:
    """The passed specs, in the expected list's format, next to the report."""
    passed = sorted(name for name, result in run.results.items() if result.state == "passed")
    path = run.report_dir / f"{target}.expected"
    path.write_text("".join(f"{name}\n" for name in passed))
    return path


# ------------------------------------------------------------------ test ---
@pytest.fixture(scope="module")
def critest() -> str:
    path = find_critest()
    require_real(Path(path).is_file(), "critest is not installed (scripts/setup-critest.sh)")
    return path


@pytest.mark.timeout(SUITE_SECONDS + 300)
@pytest.mark.parametrize("target", TARGETS)
def test_critest(target: str, critest: str, tmp_path: Path, critest_summary: list[str]) -> None:
    expected_file = EXPECTED_DIR / f"{target}.expected"
    reports = report_dir(target, tmp_path)
    kept: list[KeptImages] = []
    if target == REFERENCE:
        require_real(
            Path(CONTAINERD_SOCK).is_socket(), f"containerd is not running ({CONTAINERD_SOCK})"
        )
        kept.append(KeptImages("k8s.io", CONTAINERD_KEPT, tmp_path))
    else:
        require_shim(target)
        if target == "docker":
            kept.append(KeptImages("docker", DOCKER_KEPT, tmp_path))
        elif target == "nerdctl":
            pull_sandbox_image(NERDCTL_NAMESPACE)

    cni_before = cni_state()
    shm_before = shm_segments()
    try:
        with (
            critest_endpoint(target, tmp_path, nerdctl_namespace=NERDCTL_NAMESPACE) as endpoint,
            SandboxWatch(endpoint) as watch,
        ):
            run = run_critest(critest, endpoint, reports, timeout=SUITE_SECONDS, seed=SEED)
            pods_left = leaked_pods(endpoint, watch.ids)
    finally:
        shm_removed = remove_critest_shm(shm_before)
        restored = [ref for keeper in kept for ref in keeper.restore()]

    if target == "nerdctl":
        cni_left = cni_leaks(cni_before, lambda cni_id: cni_id.startswith(f"{NERDCTL_NAMESPACE}-"))
    else:
        cni_left = cni_leaks(cni_before, lambda cni_id: cni_id in watch.ids)
    engine_left = engine_leftovers(target)
    passed_file = write_passed(run, target)

    summary = f"critest {target}: {run.summary()} (exit {run.returncode}); report {reports}"
    critest_summary.append(summary)
    print(summary)
    print(f"  command: {' '.join(run.command)}")
    if shm_removed:
        print(f"  removed {len(shm_removed)} shm segments critest's HostIpc specs left")
    if restored:
        print(f"  restored {', '.join(restored)}")

    assert run.results, (
        f"critest produced no report (exit {run.returncode}); see {reports / 'critest.log'}"
    )
    problems = []
    if expected_file.exists():
        comparison = compare(run.results, read_spec_list(expected_file))
        for name in comparison.new:
            line = f"critest {target}: newly passing (add it to {expected_file.name}): {name}"
            critest_summary.append(line)
            print(line)
        if comparison.regressions:
            problems.append(
                f"{len(comparison.regressions)} expected specs did not pass on {target}:\n"
                + comparison.describe_regressions()
            )
    else:
        problems.append(f"no expected list {expected_file}; the passed specs are in {passed_file}")
    leftovers = pods_left + engine_left + cni_left
    if leftovers and target == REFERENCE:
        # the reference's own leaks are containerd's, not pycri's: report, removed above
        print("  containerd's CRI left behind (removed):\n    " + "\n    ".join(leftovers))
    elif leftovers:
        problems.append(f"critest's run on {target} left behind:\n  " + "\n  ".join(leftovers))
    assert not problems, "\n".join(problems) + f"\n(log: {reports / 'critest.log'})"
