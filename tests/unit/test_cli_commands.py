"""pycrictl commands end to end against an in-process fake CRI endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from click.testing import CliRunner, Result

from pycri.api import api_pb2 as cri
from pycri.cli.main import cli
from pycri.testing import FakeEndpoint, serve_fake

BUSYBOX = "docker.io/library/busybox:latest"


class Crictl:
    """Runs pycrictl against one fake endpoint and makes pods and containers there."""

    def __init__(self, fake: FakeEndpoint, tmp: Path) -> None:
        self.fake = fake
        self.tmp = tmp
        self.config = tmp / "crictl.yaml"
        self.config.write_text("")
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, endpoint: bool = True) -> Result:
        base = ["-c", str(self.config)] + (["-r", self.fake.address] if endpoint else [])
        result = self.runner.invoke(cli, [*base, *args], catch_exceptions=False)
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)

    def write(self, name: str, data: dict[str, Any]) -> str:
        path = self.tmp / name
        path.write_text(json.dumps(data))
        return str(path)

    def pod_config(self, name: str = "web", namespace: str = "default", **extra: Any) -> str:
        meta = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "attempt": 0}
        config = {"metadata": meta, "log_directory": str(self.tmp / "logs" / name), **extra}
        return self.write(f"pod-{name}-{namespace}.json", config)

    def ctr_config(self, name: str = "app", command: Sequence[str] = ("sleep", "3600")) -> str:
        config = {
            "metadata": {"name": name},
            "image": {"image": BUSYBOX},
            "command": list(command),
            "log_path": f"{name}.log",
        }
        return self.write(f"ctr-{name}.json", config)

    def runp(self, name: str = "web", namespace: str = "default", **extra: Any) -> str:
        return self("runp", self.pod_config(name, namespace, **extra)).stdout.strip()

    def run_container(
        self, pod: str, name: str = "app", command: Sequence[str] = ("sleep", "3600")
    ) -> str:
        pod_name = self.fake.client.pod_sandbox_status(
            cri.PodSandboxStatusRequest(pod_sandbox_id=pod)
        ).status.metadata
        pod_cfg = self.pod_config(pod_name.name, pod_name.namespace)
        ctr = self("create", pod, self.ctr_config(name, command), pod_cfg).stdout.strip()
        assert self("start", ctr).stdout.strip() == ctr
        return ctr

    def cleanup(self) -> None:
        client = self.fake.client
        for pod in client.list_pod_sandbox().items:
            client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id))
            client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))


@pytest.fixture
def crictl(tmp_path: Path) -> Iterator[Crictl]:
    with serve_fake() as fake:
        tool = Crictl(fake, tmp_path)
        try:
            yield tool
        finally:
            tool.cleanup()


def wait_state(crictl: Crictl, ctr: str, state: str) -> None:
    deadline = time.monotonic() + 5
    while crictl.json("inspect", ctr)["status"]["state"] != state:
        assert time.monotonic() < deadline, f"{ctr} never reached {state}"
        time.sleep(0.02)


def test_version_table_and_json(crictl: Crictl) -> None:
    lines = crictl("version").stdout.splitlines()
    assert lines[0] == "Version:  0.1.0"
    assert lines[1].startswith("RuntimeName:  ")
    assert lines[3] == "RuntimeApiVersion:  v1"
    data = crictl.json("version", "-o", "json")
    assert set(data) == {"version", "runtimeName", "runtimeVersion", "runtimeApiVersion"}


def test_info_is_a_status_document(crictl: Crictl) -> None:
    data = crictl.json("info")
    types = [c["type"] for c in data["status"]["conditions"]]
    assert types == ["RuntimeReady", "NetworkReady"]
    assert crictl.json("info", "-q").keys() <= {"status", "runtimeHandlers", "features"}
    assert crictl("info", "-o", "go-template", "--template", "{{.status.conditions}}").stdout


def test_pod_lifecycle(crictl: Crictl) -> None:
    pod = crictl.runp("web", "team-a", labels={"app": "web"})
    assert len(pod) == 64
    table = crictl("pods").stdout.splitlines()
    header = ["POD", "ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]
    assert table[0].split() == header
    row = table[1]
    assert row.startswith(pod[:13] + " " * 7)
    assert "seconds ago" in row or "Less than a second ago" in row
    assert "Ready" in row
    assert "web" in row
    assert "team-a" in row
    assert "(default)" in row

    status = crictl.json("inspectp", pod)["status"]
    assert status["id"] == pod
    assert status["state"] == "SANDBOX_READY"
    assert status["createdAt"].endswith("Z") or "+" in status["createdAt"]

    assert crictl("stopp", pod).stdout == f"Stopped sandbox {pod}\n"
    assert crictl.json("pods", "-o", "json")["items"][0]["state"] == "SANDBOX_NOTREADY"
    assert crictl("rmp", pod).stdout == f"Removed sandbox {pod}\n"
    assert crictl.json("pods", "-o", "json") == {"items": []}


def test_pods_filters(crictl: Crictl) -> None:
    first = crictl.runp("alpha", "ns-one", labels={"tier": "a"})
    second = crictl.runp("beta", "ns-two", labels={"tier": "b"})
    ids = crictl("pods", "-q").stdout.split()
    assert ids == [second, first]  # newest first
    assert crictl("pods", "-q", "--name", "^alp").stdout.split() == [first]
    assert crictl("pods", "-q", "--namespace", "two$").stdout.split() == [second]
    assert crictl("pods", "-q", "--label", "tier=a").stdout.split() == [first]
    assert crictl("pods", "-q", "--id", first[:8]).stdout.split() == [first]
    assert crictl("pods", "-q", "-l").stdout.split() == [second]
    assert crictl("pods", "-q", "-n", "2").stdout.split() == [second, first]
    crictl("stopp", first)
    assert crictl("pods", "-q", "--state", "notready").stdout.split() == [first]
    assert crictl("pods", "-q", "-s", "READY").stdout.split() == [second]
    assert first in crictl("pods", "--no-trunc").stdout
    verbose = crictl("pods", "-v", "--name", "beta").stdout
    assert f"ID: {second}\nName: beta\n" in verbose
    assert "\ttier -> b\n" in verbose
    yaml_items = yaml.safe_load(crictl("pods", "-o", "yaml").stdout)["items"]
    assert [item["id"] for item in yaml_items] == [second, first]


def test_container_lifecycle_and_ps(crictl: Crictl) -> None:
    pod = crictl.runp("web", "shop")
    ctr = crictl.run_container(pod, "nginx")
    table = crictl("ps").stdout.splitlines()
    header = table[0].split()
    assert header[:2] == ["CONTAINER", "IMAGE"]
    assert header[-3:] == ["ID", "POD", "NAMESPACE"]
    row = table[1].split()
    assert row[0] == ctr[:13]
    assert row[1] == BUSYBOX
    # pod name and namespace come from the pod, not "unknown" as crictl shows
    assert row[-3:] == [pod[:13], "web", "shop"]
    assert "Running" in table[1]

    data = crictl.json("inspect", ctr)
    assert data["status"]["state"] == "CONTAINER_RUNNING"
    assert data["status"]["finishedAt"] == "0001-01-01T00:00:00Z"
    assert data["status"]["logPath"].endswith("nginx.log")

    assert crictl("stop", "-t", "0", ctr).stdout == f"{ctr}\n"
    assert crictl("ps", "-q").stdout == ""
    assert crictl("ps", "-q", "-a").stdout.split() == [ctr]
    assert crictl("ps", "-q", "--state", "exited").stdout.split() == [ctr]
    assert crictl.json("inspect", ctr)["status"]["state"] == "CONTAINER_EXITED"
    assert crictl("rm", ctr).stdout == f"{ctr}\n"
    assert crictl.json("ps", "-a", "-o", "json") == {"containers": []}


def test_ps_filters(crictl: Crictl) -> None:
    pod_a = crictl.runp("a", "ns-a")
    pod_b = crictl.runp("b", "ns-b")
    one = crictl.run_container(pod_a, "one")
    two = crictl.run_container(pod_b, "two")
    assert crictl("ps", "-q").stdout.split() == [two, one]
    assert crictl("ps", "-q", "--pod", pod_a).stdout.split() == [one]
    assert crictl("ps", "-q", "--name", "^tw").stdout.split() == [two]
    assert crictl("ps", "-q", "--namespace", "ns-a").stdout.split() == [one]
    assert crictl("ps", "-q", "--image", BUSYBOX).stdout.split() == [two, one]
    assert crictl("ps", "-q", "--latest").stdout.split() == [two]
    assert crictl("ps", "-q", "--last", "1").stdout.split() == [two]
    assert crictl("ps", "-q", "--id", one[:10]).stdout.split() == [one]
    verbose = crictl("ps", "-v", "--name", "one").stdout
    assert f"PodID: {pod_a}\nNamespace: ns-a\nName: one\n" in verbose
    containers = crictl.json("ps", "-o", "json")["containers"]
    assert [c["id"] for c in containers] == [two, one]
    assert containers[0]["state"] == "CONTAINER_RUNNING"
    assert isinstance(containers[0]["createdAt"], str)


def test_inspect_with_filters_and_templates(crictl: Crictl) -> None:
    pod = crictl.runp("web")
    first = crictl.run_container(pod, "first")
    second = crictl.run_container(pod, "second")
    both = crictl.json("inspect", first, second)
    assert [doc["status"]["id"] for doc in both] == [first, second]
    latest = crictl.json("inspect", "--latest")
    assert latest["status"]["id"] == second
    out = crictl("inspect", "-o", "go-template", "--template", "{{.status.metadata.name}}", first)
    assert out.stdout == "first\n"
    table = crictl("inspect", "-o", "table", first).stdout
    assert f"ID: {first}\nName: first\nState: CONTAINER_RUNNING\n" in table
    pods = crictl.json("inspectp", "--name", "web")
    assert pods["status"]["metadata"]["name"] == "web"
    assert "ID: " in crictl("inspectp", "-o", "table", pod).stdout


def test_exec_sync(crictl: Crictl) -> None:
    pod = crictl.runp()
    ctr = crictl.run_container(pod)
    result = crictl("exec", "-s", ctr, "sh", "-c", "echo out; echo err >&2")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    crictl("exec", "-s", ctr, "sh", "-c", "exit 3", code=3)
    filtered = crictl("exec", "-s", "--name", "app", "echo", "hi")
    assert filtered.stdout == f"{ctr}:\nhi\n"


def test_exec_without_sync_explains_itself(crictl: Crictl) -> None:
    pod = crictl.runp()
    ctr = crictl.run_container(pod)
    result = crictl("exec", "-it", ctr, "sh", code=1)
    assert "streaming" in result.stderr
    assert "exec -s" in result.stderr
    assert "COMMAND" in crictl("exec", "-s", ctr, code=2).stderr


def test_stop_all_rm_all_and_force(crictl: Crictl) -> None:
    pod = crictl.runp()
    one = crictl.run_container(pod, "one")
    two = crictl.run_container(pod, "two")
    result = crictl("rm", one, code=1)
    assert "is running, please stop it first" in result.stderr
    assert crictl("rm", "-f", one).stdout == f"{one}\n{one}\n"
    assert crictl("stop", "-a").stdout == f"{two}\n"
    assert crictl("stop", "-a").stdout == "No running containers found.\n"
    assert crictl("rm", "-a").stdout == f"{two}\n"
    assert "cannot specify" in crictl("stop", "-a", two, code=2).stderr


def test_rm_deletes_the_log_file_unless_kept(crictl: Crictl) -> None:
    pod = crictl.runp()
    ctr = crictl.run_container(pod, "talker", ["sh", "-c", "echo hi"])
    log_path = Path(crictl.json("inspect", ctr)["status"]["logPath"])
    wait_state(crictl, ctr, "CONTAINER_EXITED")
    assert log_path.exists()
    crictl("rm", "--keep-logs", ctr)
    assert log_path.exists()
    other = crictl.run_container(pod, "other", ["sh", "-c", "echo bye"])
    other_log = Path(crictl.json("inspect", other)["status"]["logPath"])
    wait_state(crictl, other, "CONTAINER_EXITED")
    crictl("rm", other)
    assert not other_log.exists()


def test_rmp_requires_force_for_a_ready_pod(crictl: Crictl) -> None:
    pod = crictl.runp()
    assert "please stop it first" in crictl("rmp", pod, code=1).stderr
    assert crictl("rmp", "-f", pod).stdout == f"Stopped sandbox {pod}\nRemoved sandbox {pod}\n"
    crictl.runp("x")
    crictl.runp("y")
    assert crictl("rmp", "-a", "-f").stdout.count("Removed sandbox") == 2


def test_run_creates_pod_and_container(crictl: Crictl) -> None:
    pod_cfg = crictl.pod_config("solo")
    ctr = crictl("run", "--no-pull", crictl.ctr_config("solo-app"), pod_cfg).stdout.strip()
    assert crictl("ps", "-q").stdout.split() == [ctr]
    assert "conflict" in crictl("run", "--no-pull", "--with-pull", "a", "b", code=2).stderr


def test_create_with_pull(crictl: Crictl) -> None:
    pod = crictl.runp()
    ctr = crictl("create", "--with-pull", pod, crictl.ctr_config(), crictl.pod_config())
    assert crictl.fake.fake.faults.calls["PullImage"] == 1
    assert len(ctr.stdout.strip()) == 64


def test_update_container_resources(crictl: Crictl) -> None:
    pod = crictl.runp()
    ctr = crictl.run_container(pod)
    assert crictl("update", "--memory", "100000000", "--cpu-share", "512", ctr).stdout == f"{ctr}\n"
    linux = crictl.json("inspect", ctr)["status"]["resources"]["linux"]
    assert linux["memoryLimitInBytes"] == "100000000"
    assert linux["cpuShares"] == "512"


def test_images_pull_inspecti_rmi(crictl: Crictl) -> None:
    table = crictl("images").stdout.splitlines()
    assert table[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert any(line.startswith("docker.io/library/busybox   latest") for line in table)
    names = [img["repoTags"][0] for img in crictl.json("images", "-o", "json")["images"]]
    assert names == sorted(names)
    ids = crictl("img", "-q").stdout.split()
    assert len(ids) == 2
    assert all(i.startswith("sha256:") for i in ids)

    result = crictl("pull", "--creds", "user:secret", "docker.io/library/alpine:3.19")
    assert result.stdout.startswith("Image is up to date for sha256:")
    status = crictl.json("inspecti", "alpine:3.19")["status"]
    assert status["repoTags"] == ["docker.io/library/alpine:3.19"]
    assert crictl("images", "-q", "alpine:3.19").stdout.split() == [status["id"]]
    assert crictl("rmi", "alpine:3.19").stdout == "Deleted: docker.io/library/alpine:3.19\n"
    missing = crictl("inspecti", "alpine:3.19", code=1).stderr
    assert "no such image" in missing
    assert "image-endpoint" not in missing


def test_pull_auth_options(crictl: Crictl) -> None:
    crictl("pull", "--auth", "dXNlcjpwdw==", "--pod-config", crictl.pod_config(), "nginx:1")
    assert (
        "both --creds and --auth"
        in crictl("pull", "--creds", "a:b", "--auth", "x", "y", code=2).stderr
    )


def test_rmi_prune_keeps_images_in_use(crictl: Crictl) -> None:
    crictl("pull", "docker.io/library/alpine:3.19")
    pod = crictl.runp()
    crictl.run_container(pod)  # uses busybox
    out = crictl("rmi", "--prune").stdout
    assert "Deleted: docker.io/library/alpine:3.19" in out
    assert "busybox" not in out
    remaining = {img["repoTags"][0] for img in crictl.json("images", "-o", "json")["images"]}
    assert BUSYBOX in remaining


def test_imagefsinfo(crictl: Crictl) -> None:
    data = crictl.json("imagefsinfo")
    assert "imageFilesystems" in data["status"]
    assert "Image Filesystem" in crictl("imagefsinfo", "-o", "table").stdout


def test_stats_and_statsp_json(crictl: Crictl) -> None:
    pod = crictl.runp()
    ctr = crictl.run_container(pod)
    stats = crictl.json("stats", "-o", "json")["stats"]
    assert [s["attributes"]["id"] for s in stats] == [ctr]
    pod_stats = crictl.json("statsp", "-o", "json")["stats"]
    assert [s["attributes"]["id"] for s in pod_stats] == [pod]
    table = crictl("stats", "-s", "0").stdout.splitlines()
    assert table[0].split()[:4] == ["CONTAINER", "NAME", "CPU", "%"]


def test_rpc_errors_are_one_line_with_exit_code_1(crictl: Crictl) -> None:
    result = crictl("inspect", "no-such-container", code=1)
    assert result.stderr.startswith(
        "pycrictl: ContainerStatus failed: rpc error: code = NotFound desc = "
    )
    assert result.stderr.count("\n") == 1
    crictl.fake.fake.faults.fail_next("ListContainers", grpc.StatusCode.UNAVAILABLE, "engine down")
    result = crictl("ps", code=1)
    assert (
        "ListContainers failed: rpc error: code = Unavailable desc = engine down" in result.stderr
    )
    assert "[endpoint set by --runtime-endpoint]" in result.stderr


def test_usage_errors_exit_2(crictl: Crictl) -> None:
    assert crictl("ps", "-o", "xml", code=2).exit_code == 2
    assert "--state" in crictl("pods", "--state", "bogus", code=2).stderr
    assert "label" in crictl("ps", "--label", "nonsense", code=2).stderr
    assert crictl("-t", "soon", "ps", code=2).exit_code == 2
    assert crictl("no-such-command", code=2).exit_code == 2


def test_bad_config_files(crictl: Crictl) -> None:
    bad = crictl.write("bad.json", {"metadata": {"name": "x"}, "bogus_field": 1})
    assert "bogus_field" in crictl("runp", bad, code=1).stderr
    no_ns = crictl.write("nons.json", {"metadata": {"name": "x"}})
    assert "namespace" in crictl("runp", no_ns, code=1).stderr
    assert "not found" in crictl("runp", str(crictl.tmp / "missing.json"), code=1).stderr


def test_events_stream_until_interrupted(crictl: Crictl, monkeypatch: pytest.MonkeyPatch) -> None:
    events = [cri.ContainerEventResponse(container_id="c1", created_at=5)]

    def fake_stream(*_: object, **__: object) -> Iterator[cri.ContainerEventResponse]:
        yield from events
        raise KeyboardInterrupt

    from pycri.client import CRIClient

    monkeypatch.setattr(CRIClient, "get_container_events", fake_stream)
    data = crictl.json("events")
    assert data["containerId"] == "c1"
    assert data["containerEventType"] == "CONTAINER_CREATED_EVENT"
    assert crictl("events", "-o", "go-template", "--template", "{{.containerId}}").stdout == "c1\n"


def test_completion_scripts(crictl: Crictl) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert "_PYCRICTL_COMPLETE" in crictl("completion", shell, endpoint=False).stdout


def test_debug_logs_requests(crictl: Crictl) -> None:
    result = crictl("-D", "version")
    assert "DEBU VersionRequest" in result.stderr
    assert "DEBU VersionResponse" in result.stderr


def test_colour_only_when_asked_for(crictl: Crictl, monkeypatch: pytest.MonkeyPatch) -> None:
    crictl.runp()
    args = ["-c", str(crictl.config), "-r", crictl.fake.address, "pods"]
    plain = crictl.runner.invoke(cli, args)
    assert "\x1b[" not in plain.stdout  # not a terminal
    coloured = crictl.runner.invoke(cli, args, color=True)
    assert "\x1b[32mReady\x1b[0m" in coloured.stdout
    assert coloured.stdout.splitlines()[0] == plain.stdout.splitlines()[0]
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in crictl.runner.invoke(cli, args, color=True).stdout


def test_metricdescs_and_metricsp(crictl: Crictl) -> None:
    """crictl's commands: the whole response, JSON by default, YAML on request."""
    names = {d["name"] for d in crictl.json("metricdescs")["descriptors"]}
    assert "container_cpu_usage_seconds_total" in names
    described = yaml.safe_load(crictl("metricdescs", "-o", "yaml").stdout)
    assert {d["name"] for d in described["descriptors"]} == names
    pod = crictl.runp()
    crictl.run_container(pod)
    metrics = crictl.json("metricsp")["podMetrics"]
    assert [m["podSandboxId"] for m in metrics] == [pod]
    container_names = {m["name"] for c in metrics[0]["containerMetrics"] for m in c["metrics"]}
    assert container_names <= names
    assert "container_memory_working_set_bytes" in container_names
    crictl("metricsp", "-o", "table", code=2)  # crictl offers json and yaml only
