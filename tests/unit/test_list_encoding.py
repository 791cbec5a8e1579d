"""The serialised answers of the hot RPCs (pycri.core.encoding) equal the plain ones.

ListContainers, ListPodSandbox and Version are served over gRPC as bytes
CRIRuntime assembles (``*_encoded``); these tests pin that those bytes parse
to exactly the message the plain handler builds, for every filter, and that
kept bytes never outlive a change to what they show.
"""

from __future__ import annotations

import time

import grpc
import pytest

from pycri.api import api_pb2 as cri
from pycri.core.encoding import SLACK, ListEncoder, varint
from pycri.core.runtime import CRIRuntime
from pycri.errors import InternalError, InvalidArgumentError, UnavailableError
from pycri.testing import FakeEndpoint
from pycri_shims.fake import FakeShim


def run_pod(runtime: CRIRuntime, name: str, **labels: str) -> str:
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace="ns", uid=f"uid-{name}"),
        labels=labels,
        annotations={"note": name},
    )
    return runtime.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id


def create(
    runtime: CRIRuntime, pod_id: str, name: str, command: list[str] | None = None, **labels: str
) -> str:
    return runtime.create_container(
        cri.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name=name),
                image=cri.ImageSpec(image="busybox"),
                command=command or ["sleep", "60"],
                labels=labels,
                annotations={"note": name},
            ),
        )
    ).container_id


def start(runtime: CRIRuntime, container_id: str) -> None:
    runtime.start_container(cri.StartContainerRequest(container_id=container_id))


def stop(runtime: CRIRuntime, container_id: str) -> None:
    runtime.stop_container(cri.StopContainerRequest(container_id=container_id))


def containers(runtime: CRIRuntime, f: cri.ContainerFilter | None = None) -> list[str]:
    """Assert both ListContainers answers agree (the encoded one is asked twice: kept bytes);
    the ids listed."""
    request = cri.ListContainersRequest(filter=f) if f is not None else cri.ListContainersRequest()
    plain = runtime.list_containers(request)
    for _ in range(2):
        encoded = cri.ListContainersResponse.FromString(runtime.list_containers_encoded(request))
        assert encoded == plain
        assert [c.id for c in encoded.containers] == [c.id for c in plain.containers]
    return [c.id for c in plain.containers]


def pods(runtime: CRIRuntime, f: cri.PodSandboxFilter | None = None) -> list[str]:
    request = cri.ListPodSandboxRequest(filter=f) if f is not None else cri.ListPodSandboxRequest()
    plain = runtime.list_pod_sandbox(request)
    for _ in range(2):
        encoded = cri.ListPodSandboxResponse.FromString(runtime.list_pod_sandbox_encoded(request))
        assert encoded == plain
        assert [p.id for p in encoded.items] == [p.id for p in plain.items]
    return [p.id for p in plain.items]


def listed_states(runtime: CRIRuntime) -> dict[str, int]:
    raw = runtime.list_containers_encoded(cri.ListContainersRequest())
    return {c.id: c.state for c in cri.ListContainersResponse.FromString(raw).containers}


# -- the wire format ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")],
)
def test_varint(value: int, encoded: bytes) -> None:
    assert varint(value) == encoded


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 70000])
def test_an_entry_of_any_size_parses_back(size: int) -> None:
    entry = cri.Container(id="c", labels={"big": "x" * size})
    raw = ListEncoder(cri.ListContainersResponse, "containers").encode(
        [entry], memoise=False, complete=True
    )
    assert raw == cri.ListContainersResponse(containers=[entry]).SerializeToString()


def test_only_a_response_made_of_one_repeated_message_field() -> None:
    with pytest.raises(ValueError, match="must be the only field"):
        ListEncoder(cri.VersionResponse, "version")
    with pytest.raises(ValueError, match="must be the only field"):
        ListEncoder(cri.ContainerStatusResponse, "status")  # a message, but not repeated


def test_an_empty_list_is_an_empty_response(runtime: CRIRuntime) -> None:
    assert runtime.list_containers_encoded(cri.ListContainersRequest()) == b""
    assert runtime.list_pod_sandbox_encoded(cri.ListPodSandboxRequest()) == b""
    containers(runtime)
    pods(runtime)


# -- the same answers as the plain handlers --------------------------------------------


@pytest.fixture
def populated(runtime: CRIRuntime) -> dict[str, str]:
    """Two pods (one stopped later by no one), containers in every state."""
    ids: dict[str, str] = {}
    ids["web"] = run_pod(runtime, "web", app="web", tier="front")
    ids["db"] = run_pod(runtime, "db", app="db")
    ids["web-1"] = create(runtime, ids["web"], "one", app="web", role="main")
    ids["web-2"] = create(runtime, ids["web"], "two", app="web", role="side")
    ids["db-1"] = create(runtime, ids["db"], "one", app="db", role="main")
    ids["db-2"] = create(runtime, ids["db"], "two", app="db")
    start(runtime, ids["web-1"])
    start(runtime, ids["db-1"])
    start(runtime, ids["db-2"])
    stop(runtime, ids["db-2"])
    return ids


def test_every_container_filter_answers_alike(
    runtime: CRIRuntime, populated: dict[str, str]
) -> None:
    web, db = populated["web"], populated["db"]
    every = {"web-1", "web-2", "db-1", "db-2"}
    running = cri.ContainerStateValue(state=cri.CONTAINER_RUNNING)
    # each filter with the containers it selects: agreeing on empty answers proves nothing
    filters: list[tuple[cri.ContainerFilter | None, set[str]]] = [
        (None, every),
        (cri.ContainerFilter(), every),
        (cri.ContainerFilter(id=populated["web-1"]), {"web-1"}),
        (cri.ContainerFilter(id=populated["db-2"][:5]), {"db-2"}),
        (cri.ContainerFilter(pod_sandbox_id=web), {"web-1", "web-2"}),
        (cri.ContainerFilter(pod_sandbox_id=db[:6]), {"db-1", "db-2"}),
        (cri.ContainerFilter(state=running), {"web-1", "db-1"}),
        (
            cri.ContainerFilter(state=cri.ContainerStateValue(state=cri.CONTAINER_CREATED)),
            {"web-2"},
        ),
        (cri.ContainerFilter(state=cri.ContainerStateValue(state=cri.CONTAINER_EXITED)), {"db-2"}),
        (cri.ContainerFilter(label_selector={"app": "web"}), {"web-1", "web-2"}),
        (cri.ContainerFilter(label_selector={"app": "db", "role": "main"}), {"db-1"}),
        (cri.ContainerFilter(label_selector={"app": "nothing"}), set()),
        (
            cri.ContainerFilter(pod_sandbox_id=db, state=running, label_selector={"role": "main"}),
            {"db-1"},
        ),
        (cri.ContainerFilter(id="ffffffff"), set()),
    ]
    names = {container_id: name for name, container_id in populated.items()}
    for f, expected in filters * 2:  # again, from what was kept
        assert {names[i] for i in containers(runtime, f)} == expected, f


def test_every_pod_filter_answers_alike(runtime: CRIRuntime, populated: dict[str, str]) -> None:
    runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=populated["db"]))
    filters: list[tuple[cri.PodSandboxFilter | None, set[str]]] = [
        (None, {"web", "db"}),
        (cri.PodSandboxFilter(), {"web", "db"}),
        (cri.PodSandboxFilter(id=populated["web"][:8]), {"web"}),
        (cri.PodSandboxFilter(state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY)), {"web"}),
        (cri.PodSandboxFilter(state=cri.PodSandboxStateValue(state=cri.SANDBOX_NOTREADY)), {"db"}),
        (cri.PodSandboxFilter(label_selector={"app": "web", "tier": "front"}), {"web"}),
        (cri.PodSandboxFilter(label_selector={"tier": "back"}), set()),
    ]
    names = {pod_id: name for name, pod_id in populated.items()}
    for f, expected in filters * 2:
        assert {names[i] for i in pods(runtime, f)} == expected, f


def test_a_bad_filter_fails_the_same(runtime: CRIRuntime) -> None:
    bad = cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector={"": "x"}))
    with pytest.raises(InvalidArgumentError) as plain:
        runtime.list_containers(bad)
    with pytest.raises(InvalidArgumentError) as encoded:
        runtime.list_containers_encoded(bad)
    assert encoded.value.message == plain.value.message
    assert encoded.value.rpc == plain.value.rpc == "ListContainers"


# -- kept bytes follow every change ----------------------------------------------------


def test_kept_bytes_follow_each_change_of_a_container(runtime: CRIRuntime) -> None:
    pod = run_pod(runtime, "p")
    assert listed_states(runtime) == {}
    first = create(runtime, pod, "first")
    assert listed_states(runtime) == {first: cri.CONTAINER_CREATED}
    start(runtime, first)
    assert listed_states(runtime) == {first: cri.CONTAINER_RUNNING}
    second = create(runtime, pod, "second")
    assert listed_states(runtime) == {first: cri.CONTAINER_RUNNING, second: cri.CONTAINER_CREATED}
    stop(runtime, first)
    assert listed_states(runtime) == {first: cri.CONTAINER_EXITED, second: cri.CONTAINER_CREATED}
    runtime.remove_container(cri.RemoveContainerRequest(container_id=first))
    assert listed_states(runtime) == {second: cri.CONTAINER_CREATED}
    containers(runtime)
    runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert listed_states(runtime) == {}
    pods(runtime)


def test_kept_bytes_follow_a_container_that_exits_on_its_own(runtime: CRIRuntime) -> None:
    pod = run_pod(runtime, "p")
    quick = create(runtime, pod, "quick", command=["sh", "-c", "exit 3"])
    start(runtime, quick)
    deadline = time.monotonic() + 10
    while listed_states(runtime)[quick] != cri.CONTAINER_EXITED:
        assert time.monotonic() < deadline, "the container never showed as exited"
        time.sleep(0.01)
    containers(runtime)


def test_kept_bytes_follow_a_container_that_fails_to_start(runtime: CRIRuntime) -> None:
    pod = run_pod(runtime, "p")
    broken = create(runtime, pod, "broken", command=["/no/such/binary"])
    assert listed_states(runtime) == {broken: cri.CONTAINER_CREATED}
    with pytest.raises(Exception, match="executable file not found"):
        start(runtime, broken)
    assert listed_states(runtime) == {broken: cri.CONTAINER_EXITED}
    containers(runtime)


def test_kept_bytes_follow_a_pod_that_stops(runtime: CRIRuntime) -> None:
    pod = run_pod(runtime, "p", app="x")
    pods(runtime)
    runtime.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod))
    raw = runtime.list_pod_sandbox_encoded(cri.ListPodSandboxRequest())
    assert [p.state for p in cri.ListPodSandboxResponse.FromString(raw).items] == [
        cri.SANDBOX_NOTREADY
    ]
    pods(runtime)


def test_the_fake_hands_out_one_entry_per_state(runtime: CRIRuntime, fake: FakeShim) -> None:
    """What FakeShim.stable_list_entries promises."""
    assert fake.stable_list_entries
    pod = run_pod(runtime, "p")
    a, b = create(runtime, pod, "a"), create(runtime, pod, "b")
    before = fake.list_containers(None)
    again = fake.list_containers(None)
    assert again is not before  # the caller's list to keep
    assert all(x is y for x, y in zip(before, again, strict=True))
    start(runtime, a)
    after = fake.list_containers(None)
    assert after[0] is not before[0]
    assert after[0].state == cri.CONTAINER_RUNNING
    assert before[0].state == cri.CONTAINER_CREATED  # the old entry was not touched
    assert after[1] is before[1]
    assert after[1].id == b
    hinted = fake.list_containers(cri.ContainerFilter(id=b))
    assert [c.id for c in hinted] == [b]
    assert hinted[0] is after[1]
    assert fake.list_pod_sandboxes(None)[0] is fake.list_pod_sandboxes(None)[0]


# -- the memo itself ---------------------------------------------------------------


def test_the_memo_keys_on_instances_not_on_ids() -> None:
    encoder = ListEncoder(cri.ListContainersResponse, "containers")
    for state in (cri.CONTAINER_CREATED, cri.CONTAINER_RUNNING, cri.CONTAINER_EXITED) * 3:
        entries = [cri.Container(id=f"c{i}", state=state) for i in range(3)]
        raw = encoder.encode(entries, memoise=True, complete=True)
        assert raw == cri.ListContainersResponse(containers=entries).SerializeToString()
        del entries  # the ids may come back for the next instances


def test_the_memo_drops_what_is_no_longer_listed() -> None:
    encoder = ListEncoder(cri.ListContainersResponse, "containers")
    for round_ in range(40):
        entries = [cri.Container(id=f"c{i}", created_at=round_) for i in range(20)]
        encoder.encode(entries, memoise=True, complete=True)
        encoder.encode(entries[:3], memoise=True, complete=False)
        assert len(encoder._entries) <= 2 * 20 + SLACK
    for round_ in range(4 * SLACK):
        encoder.encode([cri.Container(id=f"x{round_}")], memoise=True, complete=False)
        assert len(encoder._entries) <= 4 * (20 + SLACK) + 1


def test_without_the_promise_nothing_is_kept() -> None:
    encoder = ListEncoder(cri.ListContainersResponse, "containers")
    entries = [cri.Container(id="a"), cri.Container(id="b")]
    first = encoder.encode(entries, memoise=False, complete=True)
    entries[0].state = cri.CONTAINER_RUNNING  # allowed without the promise
    second = encoder.encode(entries, memoise=False, complete=True)
    assert cri.ListContainersResponse.FromString(second).containers[0].state == (
        cri.CONTAINER_RUNNING
    )
    assert first != second
    assert encoder._entries == {}
    assert encoder._responses == []


class RebuildingShim(FakeShim):
    """A shim like the engine ones: new entries on every list, no promise."""

    stable_list_entries = False

    def list_containers(self, hint: cri.ContainerFilter | None) -> list[cri.Container]:
        fresh = []
        for entry in super().list_containers(hint):
            copy = cri.Container()
            copy.CopyFrom(entry)
            fresh.append(copy)
        return fresh


def test_a_shim_without_the_promise_answers_alike() -> None:
    runtime = CRIRuntime(RebuildingShim())
    try:
        pod = run_pod(runtime, "p")
        first = create(runtime, pod, "a", app="a")
        containers(runtime)
        start(runtime, first)
        containers(runtime, cri.ContainerFilter(label_selector={"app": "a"}))
        assert runtime._container_list._entries == {}
    finally:
        runtime.close()


# -- Version -----------------------------------------------------------------------


def test_version_answers_alike_and_follows_the_engine(
    runtime: CRIRuntime, fake: FakeShim, monkeypatch: pytest.MonkeyPatch
) -> None:
    def both() -> cri.VersionResponse:
        plain = runtime.version(cri.VersionRequest())
        encoded = cri.VersionResponse.FromString(runtime.version_encoded(cri.VersionRequest()))
        assert encoded == plain
        return encoded

    assert "fake shim, fake " in both().runtime_version
    monkeypatch.setattr(fake, "runtime_version", lambda: "fake 99")
    assert both().runtime_version.endswith("(fake shim, fake 99)")

    def gone() -> str:
        raise UnavailableError("the engine went away")

    monkeypatch.setattr(fake, "runtime_version", gone)
    assert "engine unreachable: the engine went away" in both().runtime_version
    for i in range(40):  # an engine whose answer keeps changing is not kept forever
        monkeypatch.setattr(fake, "runtime_version", lambda i=i: f"fake {i}")
        assert both().runtime_version.endswith(f"fake {i})")
    assert len(runtime._versions) <= 16


def test_encoded_handlers_count_as_the_rpc(runtime: CRIRuntime, fake: FakeShim) -> None:
    assert CRIRuntime.encoded_rpc_handlers() == {
        "Version": "version_encoded",
        "ListContainers": "list_containers_encoded",
        "ListPodSandbox": "list_pod_sandbox_encoded",
    }
    assert set(CRIRuntime.encoded_rpc_handlers()) <= set(CRIRuntime.rpc_handlers())
    fake.faults.fail_next("ListContainers", grpc.StatusCode.UNAVAILABLE, "engine down")
    with pytest.raises(UnavailableError) as raised:
        runtime.list_containers_encoded(cri.ListContainersRequest())
    assert raised.value.rpc == "ListContainers"
    runtime.list_containers_encoded(cri.ListContainersRequest())
    assert fake.faults.calls["ListContainers"] == 2


# -- over gRPC -----------------------------------------------------------------------


def test_over_grpc_the_lists_and_version_are_the_plain_answers(
    fake_endpoint: FakeEndpoint,
) -> None:
    client, fake = fake_endpoint.client, fake_endpoint.fake
    runtime = CRIRuntime(fake)  # the same shim, in process, for the plain answers
    pod = run_pod(runtime, "p", app="p")
    started = create(runtime, pod, "a", app="a")
    create(runtime, pod, "b", app="b")
    start(runtime, started)
    for f in (None, cri.ContainerFilter(label_selector={"app": "a"}), cri.ContainerFilter()):
        request = cri.ListContainersRequest(filter=f) if f else cri.ListContainersRequest()
        assert client.list_containers(request) == runtime.list_containers(request)
    assert client.list_pod_sandbox() == runtime.list_pod_sandbox(cri.ListPodSandboxRequest())
    assert client.version() == runtime.version(cri.VersionRequest())
    stop(runtime, started)
    assert client.list_containers() == runtime.list_containers(cri.ListContainersRequest())


def test_over_grpc_errors_keep_their_codes(
    fake_endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, fake = fake_endpoint.client, fake_endpoint.fake
    bad = cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector={"": "x"}))
    with pytest.raises(InvalidArgumentError):
        client.list_containers(bad)
    fake.faults.fail_next("Version", grpc.StatusCode.UNAVAILABLE, "engine down")
    with pytest.raises(UnavailableError, match="engine down"):
        client.version()
    fake.faults.fail_next("ListPodSandbox", grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
    with pytest.raises(Exception, match="busy") as raised:
        client.list_pod_sandbox()
    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]

    def broken(hint: object) -> list[cri.Container]:
        raise RuntimeError("boom")

    monkeypatch.setattr(fake, "list_containers", broken)
    with pytest.raises(InternalError, match="ListContainers: internal error: RuntimeError: boom"):
        client.list_containers()
