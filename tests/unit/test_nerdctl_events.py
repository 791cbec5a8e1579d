"""The nerdctl shim's container view (view.py, events.py) and its memos (memo.py), over
event lines as nerdctl 1.7.7 prints them.

``data/nerdctl_events.jsonl`` holds lines captured from ``nerdctl events
--format json`` on containerd 1.6.20, namespace ``pycri-nev``: create/start/
stop/start again/kill -9/``rm -f`` of one container, ``run -d`` of a command
that exits, a failed start (nerdctl's error label), an exec, pause and
unpause; one line of another namespace (``moby``) and one probe (the
namespace label update).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.core.engine import KIND_LABEL
from pycri_shims.nerdctl import convert
from pycri_shims.nerdctl.events import (
    CREATED,
    PROBE_LABEL,
    RUNNING,
    EngineEvent,
    Entry,
    apply_event,
    parse_event,
)
from pycri_shims.nerdctl.images import ImageStore
from pycri_shims.nerdctl.memo import ImageMemo
from pycri_shims.nerdctl.options import NerdctlOptions
from pycri_shims.nerdctl.runner import NerdctlRunner
from pycri_shims.nerdctl.view import ContainerView

LINES = (Path(__file__).parent / "data" / "nerdctl_events.jsonl").read_text().splitlines()
NS = "pycri-nev"
A = "3c06b64f3f269cf796a249c1dc4c60f8eeee3f5b1aba2b7dc6bd6ea065173a7e"  # create, start, kill...
B = "0d98f4d96c10897134fb9416abe34018db7fcdad5c2328469402bd041c9be92f"  # run -d true
C = "e2a44a8d2551d08b091414383bcd145785bab9681850994fd7772353e0012c87"  # failed start
X = "c3783b166ed545193350c3b4f32b6ade621e5ca06796c94874a476e1fa4d5e44"  # exec, pause


def events() -> list[EngineEvent]:
    parsed = [parse_event(line) for line in LINES]
    assert all(event is not None for event in parsed)
    return [event for event in parsed if event is not None]


def ours(topic: str, container_id: str) -> list[EngineEvent]:
    return [e for e in events() if e.topic == topic and e.container_id == container_id]


def test_every_captured_line_parses() -> None:
    topics = {e.topic for e in events()}
    assert {
        "/containers/create",
        "/containers/update",
        "/containers/delete",
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
        "/tasks/paused",
        "/tasks/resumed",
        "/namespaces/update",
    } <= topics
    assert {e.namespace for e in events()} == {NS, "moby"}


def test_container_events_name_the_container() -> None:
    create = ours("/containers/create", A)[0]
    assert create.image == "docker.io/library/busybox:latest"
    assert create.timestamp == "2026-12-03T15:50:27.97939094Z"
    assert create.labels is None  # containerd's create event carries none
    update = ours("/containers/update", A)[0]
    assert update.labels is not None
    assert update.labels["nerdctl/name"] == "nev-a"
    assert ours("/containers/delete", A)


def test_an_exec_exit_is_not_the_containers() -> None:
    exits = ours("/tasks/exit", X)
    assert [(e.init, e.exit_status) for e in exits] == [(False, 0), (True, 137)]


def test_the_probe_is_recognised() -> None:
    probe = next(e for e in events() if e.topic == "/namespaces/update")
    assert probe.probe == "6f1c0de2a9b84f07a3b1e4c2d5f60718"
    assert probe.namespace == NS  # the updating client's namespace: the shim's
    assert PROBE_LABEL == "io.pycri.events-probe"


def test_garbage_is_not_an_event() -> None:
    for line in ["", "not json", "[1, 2]", '{"Event": "{broken"}', 'time="x" level=fatal']:
        assert parse_event(line) is None


def replay(entries: dict[str, Entry], container_id: str, upto: int | None = None) -> list[str]:
    """The status after each event of ``container_id`` of the capture."""
    seen = []
    for event in [e for e in events() if e.namespace == NS and e.container_id == container_id][
        :upto
    ]:
        assert apply_event(entries, event)
        entry = entries.get(container_id)
        seen.append(entry.status if entry is not None else "gone")
    return seen


def test_a_lifecycle_replays_as_ps_shows_it() -> None:
    entries: dict[str, Entry] = {}
    assert replay(entries, A) == [
        CREATED,  # create
        CREATED,  # update (labels, by start)
        CREATED,  # task create
        RUNNING,  # task start
        RUNNING,  # update (by stop)
        "Exited (137)",
        "Exited (137)",  # update (by the second start)
        CREATED,  # the old task deleted: ps says Created until the new one starts
        CREATED,
        RUNNING,
        "Exited (137)",  # kill -9 of its init
        CREATED,  # rm -f deletes the task
        "gone",
    ]


def test_a_failed_start_shows_nerdctls_error_label() -> None:
    entries: dict[str, Entry] = {}
    replay(entries, C, upto=3)
    entry = entries[C]
    assert entry.labels is not None
    assert "nerdctl/error" in entry.labels
    assert entry.name == "nev-c"
    assert convert.container_from_row(entry.row()).state == cri.CONTAINER_EXITED


def test_pause_resume_and_exec() -> None:
    entries: dict[str, Entry] = {}
    assert replay(entries, X) == [
        CREATED,
        CREATED,
        RUNNING,
        RUNNING,  # exec-added
        RUNNING,  # exec-started
        RUNNING,  # the exec's exit
        "Paused",
        RUNNING,
        "Exited (137)",
        CREATED,
        "gone",
    ]


def test_an_event_about_an_unseen_container_asks_for_a_rebuild() -> None:
    entries: dict[str, Entry] = {}
    start = ours("/tasks/start", A)[0]
    assert not apply_event(entries, start)
    # a delete of what is not known changes nothing a rebuild would
    assert apply_event(entries, ours("/containers/delete", A)[0])


# -- the view, without a stream ----------------------------------------------------


def pod_row(pod_id: str, status: str = "Up") -> dict[str, Any]:
    return {
        "ID": pod_id,
        "Names": "k8s_POD_coredns-7db6d8ff4d-x2k9p_kube-system_0",
        "Image": "registry.k8s.io/pause:3.9",
        "CreatedAt": "2026-12-03T15:50:27.97939094Z",
        "Status": status,
        "Labels": {
            KIND_LABEL: "podsandbox",
            "io.kubernetes.pod.name": "coredns-7db6d8ff4d-x2k9p",
            "io.kubernetes.pod.namespace": "kube-system",
        },
    }


def view_over(rows: list[dict[str, Any]]) -> ContainerView:
    return ContainerView(NerdctlRunner("/nonexistent/nerdctl", [], 1.0), NS, lambda: rows)


def line(topic: str, container_id: str, **inner: object) -> EngineEvent:
    key = "id" if topic.startswith("/containers/") else "container_id"
    envelope = {
        "Timestamp": "2026-12-03T15:50:30Z",
        "Namespace": NS,
        "Topic": topic,
        "Event": json.dumps({key: container_id, **inner}),
    }
    event = parse_event(json.dumps(envelope))
    assert event is not None
    return event


def test_events_during_a_rebuild_are_replayed_over_the_snapshot() -> None:
    pod = "a" * 64
    rows = [pod_row(pod)]

    def snapshot() -> list[dict[str, Any]]:
        # the pod exits while ps runs: its event comes before ps returns, older state
        view._feed(line("/tasks/exit", pod, id=pod, exit_status=0))
        return rows

    view = ContainerView(NerdctlRunner("/nonexistent/nerdctl", [], 1.0), NS, snapshot)
    assert view.rows() is None  # not fresh before the first rebuild
    view._rebuild()
    assert view.fresh
    pods = view.converted("podsandbox", convert.pod_from_row)
    assert pods is not None
    assert [p.state for p in pods] == [cri.SANDBOX_NOTREADY]


def test_converted_items_are_kept_until_the_container_changes() -> None:
    pod = "b" * 64
    view = view_over([pod_row(pod)])
    view._rebuild()
    first = view.converted("podsandbox", convert.pod_from_row)
    again = view.converted("podsandbox", convert.pod_from_row)
    assert first is not None
    assert again is not None
    assert first[0] is again[0]
    view._feed(line("/tasks/exit", pod, id=pod, exit_status=137))
    changed = view.converted("podsandbox", convert.pod_from_row)
    assert changed is not None
    assert changed[0].state == cri.SANDBOX_NOTREADY
    assert view.converted("container", convert.container_from_row) == []


def test_unclaimed_containers_are_left_out_until_their_labels_are_known() -> None:
    view = view_over([])
    view._rebuild()
    view._feed(line("/containers/create", "c" * 64, image="busybox"))
    assert view.rows() == []
    fresh, entry = view.entry("c" * 64)
    assert not fresh
    assert entry is None
    view.claim("c" * 64, "k8s_coredns_coredns-7db6d8ff4d-x2k9p", "busybox", {"a": "b"})
    rows = view.rows()
    assert rows is not None
    assert [r["Labels"] for r in rows] == [{"a": "b"}]


def test_a_missed_event_makes_the_view_stale() -> None:
    view = view_over([])
    view._rebuild()
    view._feed(line("/tasks/start", "d" * 64))
    assert not view.fresh
    assert view.rows() is None


def test_a_vanished_containerd_socket_makes_the_view_stale(tmp_path: Path) -> None:
    """A stopped containerd removes its socket before its event stream has ended:
    nothing is answered from the view or its memo meanwhile (CI caught a list
    answered from memory 1 run in 5, engine stopped)."""
    socket = tmp_path / "containerd.sock"
    socket.touch()
    pod = "9" * 64
    view = ContainerView(
        NerdctlRunner("/nonexistent/nerdctl", [], 1.0),
        NS,
        lambda: [pod_row(pod)],
        engine_socket=str(socket),
    )
    view._rebuild()
    look = Inspector()
    view.inspect(pod, look)
    assert view.rows() is not None
    socket.unlink()
    assert view.rows() is None
    assert view.converted("podsandbox", convert.pod_from_row) is None
    assert view.entry(pod) == (False, None)
    assert view.image_epoch() is None
    view.inspect(pod, look)
    assert look.calls == 2  # asked containerd, which answers UNAVAILABLE
    socket.touch()  # back, but events may have been missed: only a rebuild makes it fresh
    assert not view.fresh
    view._rebuild()
    assert view.fresh


def test_await_state_returns_once_the_event_is_in() -> None:
    pod = "e" * 64
    view = view_over([pod_row(pod)])
    view._rebuild()
    view._feed(line("/containers/delete", pod))
    view.await_state(pod, lambda entry: entry is None)  # at once: already applied
    assert view.fresh


def test_container_events_as_the_cri_reports_them() -> None:
    kinds = [
        (e.topic, message.container_event_type)
        for e in events()
        if e.container_id == X and (message := convert.container_event(e)) is not None
    ]
    assert kinds == [
        ("/containers/create", cri.CONTAINER_CREATED_EVENT),
        ("/tasks/start", cri.CONTAINER_STARTED_EVENT),
        ("/tasks/exit", cri.CONTAINER_STOPPED_EVENT),  # the init's; the exec's is left out
        ("/containers/delete", cri.CONTAINER_DELETED_EVENT),
    ]
    stopped = convert.container_event(ours("/tasks/exit", X)[-1])
    assert stopped is not None
    assert stopped.created_at == 1796313795828851651  # the envelope's timestamp


def test_only_unasked_changes_of_pycri_containers_are_passed_on() -> None:
    passed: list[str] = []
    container = {**pod_row("f" * 64), "Labels": {KIND_LABEL: "container"}}
    view = ContainerView(
        NerdctlRunner("/nonexistent/nerdctl", [], 1.0),
        NS,
        lambda: [container, pod_row("a" * 64)],
        lambda event: passed.append(f"{event.topic} {event.container_id[0]}"),
    )
    view._rebuild()
    with view.expecting("f" * 64):
        view._feed(line("/tasks/exit", "f" * 64, id="f" * 64, exit_status=0))  # its own stop
    view._feed(line("/tasks/start", "f" * 64))  # started behind pycri's back
    view._feed(line("/tasks/exit", "a" * 64, id="a" * 64))  # a pod: no container event
    view._feed(line("/containers/delete", "f" * 64))
    assert passed == ["/tasks/start f", "/containers/delete f"]


def test_a_claim_made_while_a_rebuild_runs_ps_is_kept() -> None:
    new = "9" * 64
    labels = {KIND_LABEL: "podsandbox", "io.kubernetes.pod.name": "coredns-7db6d8ff4d-x2k9p"}

    def snapshot() -> list[dict[str, Any]]:
        # RunPodSandbox finishes while ps runs: ps missed the pod, its events are buffered
        view._feed(line("/containers/create", new, image="registry.k8s.io/pause:3.9"))
        view._feed(line("/tasks/start", new))
        view.claim(new, "k8s_POD_coredns", "registry.k8s.io/pause:3.9", labels)
        return []

    view = ContainerView(NerdctlRunner("/nonexistent/nerdctl", [], 1.0), NS, snapshot)
    view._rebuild()
    pods = view.converted("podsandbox", convert.pod_from_row)
    assert pods is not None
    assert [(p.id, p.state) for p in pods] == [(new, cri.SANDBOX_READY)]


# -- the memos (memo.py): kept only while the view vouches for them --------------

POD = "f" * 64
OTHER = "e" * 64


class Inspector:
    """A stand-in ``container inspect``: counts its calls, can act while it 'runs'."""

    def __init__(self) -> None:
        self.calls = 0
        self.during: Any = None

    def __call__(self, object_id: str) -> dict[str, Any]:
        self.calls += 1
        data = {"Id": object_id, "call": self.calls}
        if self.during is not None:
            self.during()
            self.during = None
        return data


def warm_view() -> Any:
    view = view_over([pod_row(POD), pod_row(OTHER)])
    view._rebuild()
    assert view.fresh
    return view


def test_a_warm_inspect_is_kept_until_an_event_of_its_id() -> None:
    view, look = warm_view(), Inspector()
    assert view.inspect(POD, look)["call"] == 1
    assert view.inspect(POD, look)["call"] == 1  # kept: no process
    view._feed(line("/tasks/start", OTHER))  # another container's event: still kept
    assert view.inspect(POD, look)["call"] == 1
    view._feed(line("/tasks/exit", POD, exit_status=137, id=POD))
    assert view.inspect(POD, look)["call"] == 2
    view._feed(line("/tasks/exit", POD, id="exec-1"))  # an exec's exit: still an event of POD
    assert view.inspect(POD, look)["call"] == 3


def test_an_event_during_the_inspect_keeps_its_result_out() -> None:
    view, look = warm_view(), Inspector()
    look.during = lambda: view._feed(line("/tasks/exit", POD, exit_status=0, id=POD))
    assert view.inspect(POD, look)["call"] == 1
    assert view.inspect(POD, look)["call"] == 2  # the raced result was not kept
    assert view.inspect(POD, look)["call"] == 2


def test_a_delete_during_the_inspect_keeps_its_result_out() -> None:
    view, look = warm_view(), Inspector()
    look.during = lambda: view._feed(line("/containers/delete", POD))
    view.inspect(POD, look)
    assert len(view.inspected) == 0


def test_the_shims_own_changes_drop_it() -> None:
    view, look = warm_view(), Inspector()
    view.inspect(POD, look)
    view.touched(POD)
    assert view.inspect(POD, look)["call"] == 2
    with view.expecting(POD):
        assert view.inspect(POD, look)["call"] == 3
    assert view.inspect(POD, look)["call"] == 4  # dropped again on the way out


def test_nothing_is_kept_unless_the_view_is_fresh_and_knows_the_id() -> None:
    view, look = view_over([pod_row(POD)]), Inspector()
    view.inspect(POD, look)
    view.inspect(POD, look)
    assert look.calls == 2  # not fresh yet
    view._rebuild()
    view.inspect("a" * 64, look)
    view.inspect("a" * 64, look)
    assert look.calls == 4  # unknown to the view
    view.inspect(POD[:12], look)
    view.inspect(POD[:12], look)
    assert look.calls == 6  # a prefix is no id the events name


def test_staleness_and_rebuilds_forget_everything() -> None:
    view, look = warm_view(), Inspector()
    view.inspect(POD, look)
    view.invalidate()
    assert not view.fresh
    assert len(view.inspected) == 0
    view.inspect(POD, look)
    assert look.calls == 2
    assert len(view.inspected) == 0
    view._rebuild()
    view.inspect(POD, look)
    assert len(view.inspected) == 1
    look.during = view._rebuild  # a rebuild while an inspect runs
    view.touched(POD)
    view.inspect(POD, look)
    assert len(view.inspected) == 0


def test_image_memo_forgets_on_image_events() -> None:
    view = view_over([])
    memo: ImageMemo[str] = ImageMemo(view)
    calls: list[str] = []

    def look(ref: str) -> str:
        calls.append(ref)
        return f"sha256:{len(calls)}"

    assert memo.get("busybox", look) == "sha256:1"  # not fresh: not kept
    view._rebuild()
    assert memo.get("busybox", look) == "sha256:2"
    assert memo.get("busybox", look) == "sha256:2"
    envelope = {"Namespace": NS, "Topic": "/images/update", "Event": '{"name": "busybox"}'}
    event = parse_event(json.dumps(envelope))
    assert event is not None
    view._feed(event)
    assert memo.get("busybox", look) == "sha256:3"
    assert calls == ["busybox"] * 3


def test_image_memo_keeps_no_lookup_that_raced_the_shims_own_pull() -> None:
    view = view_over([])
    view._rebuild()
    memo: ImageMemo[str] = ImageMemo(view)
    calls: list[str] = []

    def look(ref: str) -> str:
        calls.append(ref)
        if len(calls) == 1:
            memo.clear()  # the shim's pull ended while this lookup ran
        return f"sha256:{len(calls)}"

    assert memo.get("busybox", look) == "sha256:1"
    assert memo.get("busybox", look) == "sha256:2"
    assert memo.get("busybox", look) == "sha256:2"


def test_warm_image_answers_start_no_process_and_are_copies() -> None:
    view = view_over([])
    view._rebuild()
    store = ImageStore(NerdctlRunner("/nonexistent/nerdctl", [], 1.0), NerdctlOptions(), view)
    calls: list[str] = []

    def listed() -> list[cri.Image]:
        calls.append("images")
        return [cri.Image(id="sha256:1", repo_tags=["docker.io/library/busybox:latest"])]

    def status(image: str) -> cri.Image | None:
        calls.append(image)
        return cri.Image(id="sha256:1") if image == "busybox" else None

    store.list = listed  # type: ignore[method-assign]
    store.status = status  # type: ignore[method-assign]
    first = store.list_images()
    first[0].repo_tags.append("mutated")  # what a router does to merge engines
    assert list(store.list_images()[0].repo_tags) == ["docker.io/library/busybox:latest"]
    found = store.image_status("busybox")
    assert found is not None
    found.id = "mutated"
    assert store.image_status("busybox") == cri.Image(id="sha256:1")
    assert store.image_status("absent") is None
    assert store.image_status("absent") is None  # an absence is asked again
    assert calls == ["images", "busybox", "absent", "absent"]
    store._changed()  # the shim's own pull or removal
    store.list_images()
    assert calls[-1] == "images"
