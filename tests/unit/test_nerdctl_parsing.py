"""The nerdctl shim's pure parts: argument lists, parsing, labels, errors (no daemon)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.errors import CRIError, NotFoundError, UnavailableError
from pycri_shims.nerdctl import NerdctlOptions
from pycri_shims.nerdctl import labels as labelcodec
from pycri_shims.nerdctl.args import container_args, sandbox_args
from pycri_shims.nerdctl.convert import container_from_row
from pycri_shims.nerdctl.images import parse_size
from pycri_shims.nerdctl.logsource import json_log_source, parse_record
from pycri_shims.nerdctl.runner import error_for
from pycri_shims.nerdctl.timestamps import to_ns


def test_timestamps_in_both_formats() -> None:
    rfc = to_ns("2026-11-27T12:32:03.135449585Z")
    assert rfc % 1_000_000_000 == 135449585
    assert to_ns("2026-11-27 12:32:03 +0000 UTC") == rfc - 135449585
    assert to_ns("2026-11-27 14:32:03.5 +0200 CEST") == rfc - 135449585 + 500_000_000
    assert to_ns("0001-01-01T00:00:00Z") == 0
    assert to_ns("") == 0
    with pytest.raises(ValueError, match="unrecognised"):
        to_ns("yesterday")


def test_oversized_labels_are_split_and_joined() -> None:
    big = "é" * 5000  # 10 000 bytes: over containerd's 4096 per label
    labels = {"small": "x", "annotation.big": big}
    split = labelcodec.split(labels)
    assert all(len(k.encode()) + len(v.encode()) <= 4096 for k, v in split.items())
    assert "annotation.big" not in split
    assert labelcodec.join(split) == labels


def test_error_mapping() -> None:
    def stderr(msg: str) -> str:
        return f'time="2026-11-27T12:35:44Z" level=fatal msg="{msg}"\n'

    missing = error_for(["inspect"], 1, stderr("1 errors:\\nno such container: abc"))
    assert isinstance(missing, NotFoundError)
    down = error_for(["ps"], 1, stderr(r"cannot access containerd socket \"/x\": no such file"))
    assert isinstance(down, UnavailableError)
    assert "start containerd" in down.message
    # "executable file not found" is not NOT_FOUND: the container exists
    failed = error_for(["start"], 1, stderr("exec: x: executable file not found in $PATH"))
    assert type(failed) is CRIError
    assert "executable file not found" in failed.message


def test_options() -> None:
    options = NerdctlOptions.parse({"namespace": "mine", "timeout": "5", "insecure-registries": ""})
    assert (options.namespace, options.timeout, options.insecure_registries) == ("mine", 5.0, ())
    assert NerdctlOptions().is_insecure("127.0.0.1:5000")
    assert NerdctlOptions().is_insecure("localhost")
    assert not NerdctlOptions().is_insecure("registry.example:5000")
    with pytest.raises(ValueError, match=r"k8s\.io"):
        NerdctlOptions.parse({"namespace": "k8s.io"})
    with pytest.raises(TypeError, match="unknown"):
        NerdctlOptions.parse({"colour": "blue"})
    assert "--namespace" in NerdctlOptions().global_args()


def test_sizes() -> None:
    assert parse_size("672.0 KiB") == 688128
    assert parse_size("2.0 MiB") == 2 * 1024 * 1024
    assert parse_size("12 B") == 12
    assert parse_size("?") == 0


def test_argument_lists() -> None:
    pod = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="p", namespace="n", uid="u"),
        hostname="h",
        port_mappings=[cri.PortMapping(container_port=80, host_port=8080, protocol=cri.UDP)],
    )
    args = sandbox_args(pod, "k8s_POD_p", {"a": "1,2"}, "bridge", "pause:1")
    assert args[-1] == "pause:1"
    assert args[args.index("--publish") : args.index("--publish") + 2] == [
        "--publish",
        "8080:80/udp",
    ]
    assert args[args.index("--label") : args.index("--label") + 2] == ["--label", "a=1,2"]
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="c"),
        command=["sh", "-c"],
        args=["echo hi"],
        mounts=[cri.Mount(container_path="/d", host_path="/tmp", readonly=True)],
    )
    cargs = container_args(config, pod, "podid", "name", {}, "busybox", ipc_join=False)
    assert cargs[-2:] == ["busybox", "echo hi"]
    assert "--pid" in cargs
    assert "container:podid" in cargs
    assert [
        a for i, a in enumerate(cargs) if a == "--entrypoint" or cargs[i - 1] == "--entrypoint"
    ] == ["--entrypoint", "sh", "--entrypoint", "-c"]
    mount = cargs[cargs.index("--mount") + 1]
    assert mount == "type=bind,source=/tmp,target=/d,readonly,bind-propagation=rprivate"


def test_a_container_with_its_own_ipc_namespace_gets_the_pods_ipc_sysctls() -> None:
    """nerdctl 1 cannot join the pod's IPC namespace, so its sysctls are set again."""
    sysctls = {
        "kernel.shm_rmid_forced": "1",
        "fs.mqueue.msg_max": "100",
        "net.ipv4.ip_forward": "1",
    }
    pod = cri.PodSandboxConfig(linux=cri.LinuxPodSandboxConfig(sysctls=sysctls))
    config = cri.ContainerConfig(metadata=cri.ContainerMetadata(name="c"))

    def sysctl_args(ipc_join: bool) -> list[str]:
        args = container_args(config, pod, "podid", "name", {}, "busybox", ipc_join=ipc_join)
        return [args[i + 1] for i, arg in enumerate(args) if arg == "--sysctl"]

    # network sysctls belong to the pause container's network namespace, which is joined
    assert sysctl_args(ipc_join=False) == ["fs.mqueue.msg_max=100", "kernel.shm_rmid_forced=1"]
    assert sysctl_args(ipc_join=True) == []


def test_ps_row_states() -> None:
    def row(status: str, **labels: str) -> cri.Container:
        return container_from_row(
            {"ID": "x", "Status": status, "CreatedAt": "2026-11-27T12:32:03Z", "Labels": labels}
        )

    assert row("Up").state == cri.CONTAINER_RUNNING
    assert row("Exited (3) 2 seconds ago").state == cri.CONTAINER_EXITED
    assert row("Created").state == cri.CONTAINER_CREATED
    assert row("Created", **{"nerdctl/error": "boom"}).state == cri.CONTAINER_EXITED


def test_json_log_follower(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(
        b'{"log":"one\\n","stream":"stdout","time":"2026-11-27T12:34:30.1Z"}\n'
        b'{"log":"two\\n","stream":"stderr","time":"2026-11-27T12:34:30.2Z"}\n'
        b"not json\n"
        b'{"log":"three\\n","stream":"stdout","time":"2026-11-27T12:34:30.3Z"}\n'
    )
    done = threading.Event()
    done.set()  # container removed: read to the end and stop
    source = json_log_source(str(log), lambda: False, done)
    records = list(source(to_ns("2026-11-27T12:34:30.2Z"), threading.Event()))
    assert [(r.stream, r.line) for r in records] == [("stderr", b"two"), ("stdout", b"three")]
    record = parse_record(b'{"log":"no newline","stream":"stdout","time":"2026-11-27T00:00:00Z"}')
    assert record is not None
    assert record.partial
