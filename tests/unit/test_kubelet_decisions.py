"""The kubelet's decisions as pure functions: back-off, restart policy, probes, phase, actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pycri.api import api_pb2 as cri
from pycri.kubelet.cli.tables import pod_reason
from pycri.kubelet.cli.timefmt import apimachinery_human_duration
from pycri.kubelet.model import labels as L
from pycri.kubelet.model.manifest import parse_documents
from pycri.kubelet.model.spec import ExecProbe, Pod
from pycri.kubelet.sync.actions import compute_actions
from pycri.kubelet.sync.backoff import ImageBackoff, next_restart, should_restart
from pycri.kubelet.sync.criconfig import (
    PodContext,
    container_config,
    container_hash,
    expand,
    sandbox_config,
    sandbox_hash,
)
from pycri.kubelet.sync.kubelet import PodInfo
from pycri.kubelet.sync.observed import ObservedContainer, ObservedPod, ObservedSandbox
from pycri.kubelet.sync.paths import KubeletPaths
from pycri.kubelet.sync.probes import ProbeTracker, ProbeView, view_of
from pycri.kubelet.sync.status import PodStatus, compute_status

NOW = 1_700_000_000.0
S = 1_000_000_000  # ns per second

RUNNING, EXITED, CREATED = cri.CONTAINER_RUNNING, cri.CONTAINER_EXITED, cri.CONTAINER_CREATED


def make_pod(
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    restart: str = "Always",
    **spec: Any,
) -> Pod:
    document = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "uid": "uid-1"},
        "spec": {
            "restartPolicy": restart,
            "containers": containers or [{"name": "app", "image": "busybox"}],
            **({"initContainers": init} if init else {}),
            **spec,
        },
    }
    return parse_documents([document], node="node-1").pods[0]


def instance(
    pod: Pod,
    name: str,
    *,
    attempt: int = 0,
    state: int = RUNNING,
    started: float = NOW - 100,
    finished: float = 0.0,
    exit_code: int = 0,
    backoff: int = 0,
    sandbox: str = "sb-1",
    spec_hash: str | None = None,
) -> ObservedContainer:
    spec = next((c for c in pod.spec.all_containers() if c.name == name), None)
    annotations = {
        L.BACKOFF: str(backoff),
        L.CONTAINER_HASH: spec_hash or (container_hash(spec) if spec else "x"),
    }
    return ObservedContainer(
        id=f"{name}-{attempt}-{sandbox}",
        sandbox_id=sandbox,
        name=name,
        attempt=attempt,
        state=state,
        created_at=int((started - 1) * S) + attempt,
        annotations=annotations,
        started_at=int(started * S),
        finished_at=int(finished * S),
        exit_code=exit_code,
    )


def observe(pod: Pod, *containers: ObservedContainer, ready: bool = True) -> ObservedPod:
    sandbox = ObservedSandbox(
        id="sb-1",
        name=pod.name,
        namespace=pod.namespace,
        uid=pod.uid,
        attempt=0,
        state=cri.SANDBOX_READY if ready else cri.SANDBOX_NOTREADY,
        created_at=int((NOW - 200) * S),
        annotations={L.SANDBOX_HASH: sandbox_hash(pod)},
        ip="10.0.0.2",
    )
    ordered = sorted(containers, key=lambda c: c.created_at, reverse=True)
    return ObservedPod(pod.uid, pod.name, pod.namespace, [sandbox], ordered)


def status(pod: Pod, observed: ObservedPod | None, **results: bool) -> PodStatus:
    return compute_status(pod, observed, now=NOW, probe_results=lambda _cid: results)


# -- back-off and restart policy ---------------------------------------------------------


def test_crash_loop_schedule_is_immediate_then_10s_doubling_to_5min() -> None:
    pod = make_pod()
    delays, backoff = [], 0
    for attempt in range(9):
        exited = instance(
            pod,
            "app",
            attempt=attempt,
            state=EXITED,
            started=NOW - 5,
            finished=NOW,
            backoff=backoff,
        )
        restart = next_restart(exited)
        delays.append(restart.not_before - NOW)
        backoff = restart.next_backoff
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_back_off_resets_after_ten_minutes_of_running() -> None:
    pod = make_pod()
    long_run = instance(
        pod, "app", state=EXITED, started=NOW - 601, finished=NOW, backoff=300, attempt=7
    )
    restart = next_restart(long_run)
    assert (restart.not_before, restart.next_backoff, restart.delay) == (NOW, 10, 0)
    short_run = instance(pod, "app", state=EXITED, started=NOW - 599, finished=NOW, backoff=300)
    assert next_restart(short_run).not_before == NOW + 300


@pytest.mark.parametrize(
    ("policy", "exit_code", "restart"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 137, True),
        ("Never", 0, False),
        ("Never", 1, False),
    ],
)
def test_restart_policy_table(policy: Any, exit_code: int, restart: bool) -> None:
    assert should_restart(policy, exit_code) is restart


def test_image_pull_back_off_doubles_per_pod_and_image() -> None:
    backoff = ImageBackoff()
    assert backoff.remaining("u", "img", NOW) == 0
    assert [backoff.failed("u", "img", NOW) for _ in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.remaining("u", "img", NOW + 100) == 200
    assert backoff.remaining("other", "img", NOW) == 0
    backoff.succeeded("u", "img")
    assert backoff.remaining("u", "img", NOW) == 0


# -- probes ----------------------------------------------------------------------------


def test_probe_thresholds() -> None:
    tracker = ProbeTracker(ExecProbe(("true",), success_threshold=2, failure_threshold=3))
    assert tracker.result is None
    assert [tracker.record(True, NOW + i) for i in range(3)] == [False, True, False]
    assert tracker.result is True
    assert [tracker.record(False, NOW + i) for i in range(3)] == [False, False, True]
    assert tracker.result is False
    assert tracker.record(True, NOW) is False  # one success is not enough for threshold 2
    assert tracker.record(True, NOW) is True


def test_probe_schedule_waits_for_initial_delay_then_period() -> None:
    tracker = ProbeTracker(ExecProbe(("true",), initial_delay_seconds=5, period_seconds=10))
    started = NOW
    assert not tracker.due(NOW + 4, started)
    assert tracker.due(NOW + 5, started)
    tracker.record(True, NOW + 5)
    assert not tracker.due(NOW + 14, started)
    assert tracker.due(NOW + 15, started)


def test_probe_verdicts() -> None:
    spec = make_pod(
        [
            {
                "name": "app",
                "image": "busybox",
                "startupProbe": {"exec": {"command": ["true"]}},
                "livenessProbe": {"exec": {"command": ["true"]}},
                "readinessProbe": {"exec": {"command": ["true"]}},
            }
        ]
    ).spec.containers[0]
    assert view_of(spec, {}) == ProbeView(started=False, ready=False)
    assert view_of(spec, {"startup": False}).failed == "startup"
    assert view_of(spec, {"startup": True}) == ProbeView(started=True, ready=False)
    assert view_of(spec, {"startup": True, "readiness": True}).ready
    assert view_of(spec, {"startup": True, "liveness": False}).failed == "liveness"
    plain = make_pod().spec.containers[0]
    assert view_of(plain, {}) == ProbeView(started=True, ready=True)


# -- pod phase and container statuses --------------------------------------------------------


def two(restart: str) -> Pod:
    return make_pod(
        [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}], restart=restart
    )


def exited(pod: Pod, name: str, code: int) -> ObservedContainer:
    return instance(pod, name, state=EXITED, finished=NOW - 1, exit_code=code)


@pytest.mark.parametrize(
    ("policy", "codes", "phase"),
    [
        ("Always", (None, None), "Running"),
        ("Always", (0, 0), "Running"),
        ("OnFailure", (0, 0), "Succeeded"),
        ("OnFailure", (0, 1), "Running"),
        ("Never", (0, 0), "Succeeded"),
        ("Never", (0, 1), "Failed"),
        ("Never", (None, 1), "Running"),
    ],
)
def test_phase(policy: str, codes: tuple[int | None, int | None], phase: str) -> None:
    pod = two(policy)
    containers = [
        instance(pod, name) if code is None else exited(pod, name, code)
        for name, code in zip("ab", codes, strict=True)
    ]
    assert status(pod, observe(pod, *containers)).phase == phase


def test_pending_until_every_container_exists() -> None:
    pod = two("Always")
    assert status(pod, None).phase == "Pending"
    result = status(pod, observe(pod, instance(pod, "a")))
    assert result.phase == "Pending"
    assert [s.state.reason for s in result.container_statuses] == ["", "ContainerCreating"]


def test_init_containers_gate_the_phase() -> None:
    pod = make_pod(init=[{"name": "i", "image": "busybox"}], restart="Never")
    running = status(pod, observe(pod, instance(pod, "i")))
    assert running.phase == "Pending"
    assert running.container_statuses[0].state.reason == "PodInitializing"
    assert not running.condition("Initialized").status  # type: ignore[union-attr]
    failed = status(pod, observe(pod, exited(pod, "i", 1)))
    assert failed.phase == "Failed"
    done = status(pod, observe(pod, exited(pod, "i", 0), instance(pod, "app")))
    assert done.phase == "Running"
    assert done.ready
    assert done.init_container_statuses[0].state.reason == "Completed"


def test_crash_loop_status_and_last_state() -> None:
    pod = make_pod()
    previous = instance(pod, "app", attempt=1, state=EXITED, finished=NOW - 30, exit_code=2)
    latest = instance(
        pod, "app", attempt=2, state=EXITED, started=NOW - 3, finished=NOW - 2, exit_code=3,
        backoff=20,
    )  # fmt: skip
    result = status(pod, observe(pod, previous, latest))
    (app,) = result.container_statuses
    assert app.state.state == "waiting"
    assert app.state.reason == "CrashLoopBackOff"
    assert "back-off 20s restarting failed container=app pod=web_default(uid-1)" in (
        app.state.message
    )
    assert app.last_state is not None
    assert app.last_state.exit_code == 3
    assert app.restart_count == 2
    assert not app.ready
    assert result.phase == "Running"
    assert not result.ready


def test_readiness_comes_from_probe_results() -> None:
    pod = make_pod(
        [{"name": "app", "image": "busybox", "readinessProbe": {"exec": {"command": ["true"]}}}]
    )
    observed = observe(pod, instance(pod, "app"))
    assert not status(pod, observed).ready
    ready = status(pod, observed, readiness=True)
    assert ready.ready
    assert ready.container_statuses[0].ready
    assert ready.pod_ip == "10.0.0.2"


# -- actions ------------------------------------------------------------------------------------


def actions_for(pod: Pod, observed: ObservedPod | None, now: float = NOW, **results: bool) -> Any:
    return compute_actions(
        pod,
        observed,
        compute_status(pod, observed, now=now, probe_results=lambda _c: results),
        lambda spec, _running: view_of(spec, results),
        now,
    )


def test_a_new_pod_gets_a_sandbox_and_its_first_init_container() -> None:
    pod = make_pod(init=[{"name": "i1", "image": "busybox"}, {"name": "i2", "image": "busybox"}])
    actions = actions_for(pod, None)
    assert actions.create_sandbox
    assert actions.sandbox_attempt == 0
    assert [(s.spec.name, s.init, s.attempt) for s in actions.start] == [("i1", True, 0)]


def test_init_containers_run_one_after_the_other_then_the_app() -> None:
    pod = make_pod(init=[{"name": "i1", "image": "busybox"}, {"name": "i2", "image": "busybox"}])
    assert actions_for(pod, observe(pod, instance(pod, "i1"))).idle
    after_first = actions_for(pod, observe(pod, exited(pod, "i1", 0)))
    assert [s.spec.name for s in after_first.start] == ["i2"]
    after_both = actions_for(pod, observe(pod, exited(pod, "i1", 0), exited(pod, "i2", 0)))
    assert [s.spec.name for s in after_both.start] == ["app"]


def test_a_crashed_container_waits_out_its_back_off() -> None:
    pod = make_pod()
    crashed = instance(
        pod, "app", attempt=1, state=EXITED, started=NOW - 2, finished=NOW - 1, exit_code=1,
        backoff=10,
    )  # fmt: skip
    waiting = actions_for(pod, observe(pod, crashed))
    assert waiting.start == []
    assert waiting.backing_off == [("app", 9.0)]
    later = actions_for(pod, observe(pod, crashed), now=NOW + 9)
    assert [(s.attempt, s.backoff) for s in later.start] == [(2, 20)]


def test_a_failed_liveness_probe_kills_the_container() -> None:
    pod = make_pod(
        [{"name": "app", "image": "busybox", "livenessProbe": {"exec": {"command": ["x"]}}}]
    )
    actions = actions_for(pod, observe(pod, instance(pod, "app")), liveness=False)
    assert [(k.name, k.reason) for k in actions.kill] == [
        ("app", "Container app failed liveness probe")
    ]


def test_a_changed_definition_restarts_without_back_off() -> None:
    pod = make_pod()
    running = instance(pod, "app", spec_hash="old")
    assert [k.name for k in actions_for(pod, observe(pod, running)).kill] == ["app"]
    killed = instance(
        pod, "app", state=EXITED, finished=NOW, exit_code=137, backoff=40, spec_hash="old"
    )
    actions = actions_for(pod, observe(pod, killed))
    assert [(s.attempt, s.backoff) for s in actions.start] == [(1, 0)]


def test_finished_pods_lose_their_sandbox_but_keep_their_containers() -> None:
    pod = make_pod(restart="Never")
    actions = actions_for(pod, observe(pod, exited(pod, "app", 0)))
    assert actions.kill_pod
    assert not actions.create_sandbox
    assert not actions.start
    assert actions.remove_containers == []
    assert actions_for(pod, observe(pod, exited(pod, "app", 0), ready=False)).idle


def test_a_dead_sandbox_is_recreated_unless_the_pod_never_restarts() -> None:
    pod = make_pod()
    actions = actions_for(pod, observe(pod, exited(pod, "app", 137), ready=False))
    assert actions.create_sandbox
    assert actions.sandbox_attempt == 1
    assert [s.attempt for s in actions.start] == [1]
    never = make_pod(restart="Never")
    stuck = observe(never, instance(never, "app"), ready=False)
    assert not actions_for(never, stuck).create_sandbox


def test_old_instances_are_collected_but_the_previous_one_is_kept() -> None:
    pod = make_pod()
    old = [
        instance(pod, "app", attempt=a, state=EXITED, finished=NOW - 10 + a, exit_code=1)
        for a in range(3)
    ]
    current = instance(pod, "app", attempt=3)
    actions = actions_for(pod, observe(pod, *old, current))
    assert sorted(actions.remove_containers) == sorted(c.id for c in old[:2])


def test_containers_not_in_the_spec_are_killed() -> None:
    pod = make_pod()
    stray = instance(pod, "gone")
    actions = actions_for(pod, observe(pod, instance(pod, "app"), stray))
    assert [k.container_id for k in actions.kill] == [stray.id]


# -- CRI configs ------------------------------------------------------------------------------


def test_sandbox_and_container_configs(tmp_path: Path) -> None:
    pod = make_pod(
        [
            {
                "name": "app",
                "image": "busybox",
                "command": ["sh", "-c", "echo $(GREETING) $$(HOME)"],
                "env": [
                    {"name": "GREETING", "value": "hi-$(NAME)"},
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                "ports": [{"containerPort": 80, "hostPort": 8080}],
            }
        ],
        volumes=[{"name": "data", "emptyDir": {}}],
        shareProcessNamespace=True,
    )
    ctx = PodContext("node-1", KubeletPaths(tmp_path, tmp_path / "logs"), pod_ip="10.1.1.1")
    sandbox = sandbox_config(pod, 2, ctx)
    assert sandbox.metadata.attempt == 2
    assert sandbox.log_directory == str(tmp_path / "logs" / "default_web_uid-1")
    assert sandbox.labels[L.POD_UID] == "uid-1"
    assert sandbox.labels[L.NODE] == "node-1"
    assert sandbox.linux.security_context.namespace_options.pid == cri.POD
    assert [(p.container_port, p.host_port) for p in sandbox.port_mappings] == [(80, 8080)]
    config = container_config(
        pod, pod.spec.containers[0], init=False, attempt=3, backoff=40, ctx=ctx
    )
    assert config.log_path == "app/3.log"
    assert config.metadata.attempt == 3
    assert config.annotations[L.RESTART_COUNT] == "3"
    assert config.annotations[L.BACKOFF] == "40"
    # GREETING names NAME before NAME is defined, so that reference stays as written
    assert config.command[2] == "echo hi-$(NAME) $(HOME)"
    assert {kv.key: kv.value for kv in config.envs} == {"GREETING": "hi-$(NAME)", "NAME": "web"}
    (mount,) = config.mounts
    assert mount.host_path == str(tmp_path / "pods/uid-1/volumes/kubernetes.io~empty-dir/data")
    assert mount.readonly
    assert config.linux.resources.cpu_quota == 50_000
    assert config.linux.resources.memory_limit_in_bytes == 64 * 1024 * 1024
    host = make_pod(hostNetwork=True)
    options = sandbox_config(host, 0, ctx).linux.security_context.namespace_options
    assert (options.network, options.pid) == (cri.NODE, cri.CONTAINER)


def test_expansion() -> None:
    env = {"A": "1"}
    assert expand("$(A)-$(B)-$$(A)-$", env) == "1-$(B)-$(A)-$"


def test_apimachinery_human_duration() -> None:
    cases = [(5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m")]
    cases += [(30 * 3600, "30h"), (3 * 86400 + 3600, "3d1h"), (400 * 86400, "400d")]
    assert [apimachinery_human_duration(s) for s, _ in cases] == [text for _, text in cases]


def test_kubectl_status_column() -> None:
    pod = make_pod(init=[{"name": "i", "image": "busybox"}])
    initializing = status(pod, observe(pod, instance(pod, "i")))
    assert pod_reason(PodInfo("web", "default", "uid-1", initializing, pod)) == "Init:0/1"
    crash = make_pod()
    latest = instance(crash, "app", state=EXITED, finished=NOW - 1, exit_code=1, backoff=10)
    looping = status(crash, observe(crash, latest))
    assert pod_reason(PodInfo("web", "default", "uid-1", looping, crash)) == "CrashLoopBackOff"
    done = make_pod(restart="Never")
    completed = status(done, observe(done, exited(done, "app", 0)))
    assert pod_reason(PodInfo("web", "default", "uid-1", completed, done)) == "Completed"
    gone = PodInfo("web", "default", "uid-1", completed, None)
    assert pod_reason(gone) == "Terminating"
