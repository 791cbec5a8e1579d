"""UpdatePodSandboxResources records (pycri.core.sandbox_resources) through CRIRuntime:
the file store, the router, shims without a store, races with RemovePodSandbox."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.core.router import HandlerRouter
from pycri.core.runtime import CRIRuntime
from pycri.core.sandbox_resources import PodResources, SandboxResources, info_with_resources
from pycri.errors import (
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    UnimplementedError,
)
from pycri_shims.fake import FakeShim

R = cri.LinuxContainerResources
SIZED = PodResources(
    overhead=R(cpu_shares=256, memory_limit_in_bytes=120 << 20),
    resources=R(cpu_period=100_000, cpu_quota=-1, unified={"memory.high": "max"}),
)


def run_pod(runtime: CRIRuntime, name: str, handler: str = "") -> str:
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace="kube-system", uid=f"u-{name}")
    )
    request = cri.RunPodSandboxRequest(config=config, runtime_handler=handler)
    return runtime.run_pod_sandbox(request).pod_sandbox_id


def update(runtime: CRIRuntime, pod_id: str, resources: PodResources = SIZED) -> None:
    request = cri.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id)
    if resources.overhead is not None:
        request.overhead.CopyFrom(resources.overhead)
    if resources.resources is not None:
        request.resources.CopyFrom(resources.resources)
    runtime.update_pod_sandbox_resources(request)


def shown(runtime: CRIRuntime, pod_id: str) -> dict[str, object]:
    request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)
    details = json.loads(runtime.pod_sandbox_status(request).info["info"])
    return {k: details[k] for k in ("overhead", "resources") if k in details}


class FileBacked(FakeShim):
    """The fake with its records on disk, as the engine shims keep theirs."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.sandbox_resources = SandboxResources(directory)


class NoStore(FakeShim):
    """A shim that, like a third party's, leaves sandbox_resources to the Shim default."""

    sandbox_resources = None

    def __init__(self) -> None:
        super().__init__()
        self.sandbox_resources = None


def test_file_store_round_trip_and_what_it_leaves(tmp_path: Path) -> None:
    store = SandboxResources(tmp_path / "pod-resources")
    assert store.pod_ids() == []
    assert store.load("a" * 64) is None
    store.save("a" * 64, SIZED)
    store.save("b" * 64, PodResources(None, R(cpu_shares=2)))
    assert store.pod_ids() == ["a" * 64, "b" * 64]
    assert SandboxResources(tmp_path / "pod-resources").load("a" * 64) == SIZED
    assert oct((tmp_path / "pod-resources").stat().st_mode & 0o777) == "0o700"
    store.forget("a" * 64)
    store.forget("a" * 64)  # idempotent
    assert os.listdir(tmp_path / "pod-resources") == [f"{'b' * 64}.json"]
    with pytest.raises(InvalidArgumentError):
        store.save("../escape", SIZED)
    assert store.load("../escape") is None
    assert not (tmp_path / "escape.json").exists()


def test_unreadable_records_and_dead_writers_temporaries(tmp_path: Path) -> None:
    store = SandboxResources(tmp_path)
    (tmp_path / f"{'c' * 64}.json").write_text("{not json")
    assert store.load("c" * 64) is None  # logged, not fatal to PodSandboxStatus
    old = tmp_path / f".{'d' * 64}.x1.tmp"
    new = tmp_path / f".{'d' * 64}.x2.tmp"
    old.write_text("{}")
    new.write_text("{}")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert store.sweep(lambda pod_id: True) == ["c" * 64]
    assert sorted(os.listdir(tmp_path)) == [new.name]  # a live writer's file stays


def test_info_merges_into_the_shims_info_json() -> None:
    merged = info_with_resources({"info": json.dumps({"pid": 7}), "other": "x"}, SIZED)
    details = json.loads(merged["info"])
    assert details["pid"] == 7
    assert merged["other"] == "x"
    assert details["overhead"] == {"linux": {"cpu_shares": 256, "memory_limit_in_bytes": 120 << 20}}
    assert details["resources"] == {
        "linux": {"cpu_period": 100_000, "cpu_quota": -1, "unified": {"memory.high": "max"}}
    }
    plain = info_with_resources({"info": "not json"}, SIZED)
    assert plain["info"] == "not json"
    assert json.loads(plain["resources"]) == SIZED.info()
    assert json.loads(info_with_resources({}, SIZED)["info"]) == SIZED.info()


def test_recorded_through_core_on_disk(tmp_path: Path) -> None:
    runtime = CRIRuntime(FileBacked(tmp_path))
    pod_id = run_pod(runtime, "coredns-5d78c9869d-x7k2p")
    update(runtime, pod_id)
    assert shown(runtime, pod_id) == SIZED.info()
    # what a restarted server (a new store on the same directory) reads back
    assert SandboxResources(tmp_path).load(pod_id) == SIZED
    runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert os.listdir(tmp_path) == []


def test_removed_while_recording_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RemovePodSandbox forgets the record before UpdatePodSandboxResources writes it."""
    shim = FileBacked(tmp_path)
    runtime = CRIRuntime(shim)
    pod_id = run_pod(runtime, "etcd-control-plane-0")
    store = shim.sandbox_resources
    assert store is not None
    save = store.save

    def remove_then_save(pod: str, recorded: PodResources) -> None:
        runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod))
        save(pod, recorded)

    monkeypatch.setattr(store, "save", remove_then_save)
    with pytest.raises(NotFoundError, match="removed"):
        update(runtime, pod_id)
    assert os.listdir(tmp_path) == []


def test_a_shim_without_a_store_answers_unimplemented() -> None:
    runtime = CRIRuntime(NoStore())
    pod_id = run_pod(runtime, "web")
    with pytest.raises(UnimplementedError, match="nowhere to keep") as info:
        update(runtime, pod_id)
    assert info.value.rpc == "UpdatePodSandboxResources"
    # but a missing pod and bad resources are still told apart
    with pytest.raises(NotFoundError):
        update(runtime, "f" * 64)
    with pytest.raises(InvalidArgumentError):
        update(runtime, pod_id, PodResources(None, R(cpu_shares=-1)))
    request = cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)
    assert "resources" not in json.loads(runtime.pod_sandbox_status(request).info["info"])


def test_router_keeps_each_pod_with_its_shim() -> None:
    old, new, plain = FakeShim(), FakeShim(), NoStore()
    runtime = CRIRuntime(HandlerRouter({"old": old, "new": new, "plain": plain}, default="old"))
    on_old, on_new = run_pod(runtime, "a"), run_pod(runtime, "b", "new")
    on_plain = run_pod(runtime, "c", "plain")
    update(runtime, on_old)
    update(runtime, on_new, PodResources(R(cpu_shares=2), None))
    assert old.sandbox_resources is not None
    assert new.sandbox_resources is not None
    assert old.sandbox_resources.pod_ids() == [on_old]
    assert new.sandbox_resources.pod_ids() == [on_new]
    assert shown(runtime, on_new) == {"overhead": {"linux": {"cpu_shares": 2}}}
    with pytest.raises(UnimplementedError):
        update(runtime, on_plain)
    runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=on_new))
    assert new.sandbox_resources.pod_ids() == []
    assert old.sandbox_resources.pod_ids() == [on_old]


def test_the_sweep_is_best_effort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine that cannot list right now fails no resize: the record is made."""
    shim = FileBacked(tmp_path)
    runtime = CRIRuntime(shim)
    first, second = run_pod(runtime, "kube-proxy-a"), run_pod(runtime, "kube-proxy-b")
    update(runtime, first)

    def unavailable(hint: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        raise UnavailableError("the engine is restarting")

    monkeypatch.setattr(shim, "list_pod_sandboxes", unavailable)
    update(runtime, second)
    assert shim.sandbox_resources is not None
    assert shim.sandbox_resources.pod_ids() == sorted([first, second])
