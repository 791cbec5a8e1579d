"""Differential state-machine test: every engine shim against the fake as the reference model.

Hypothesis drives the same random sequence of CRI calls through the fake and
through a real shim (each behind its own CRIRuntime, as pycri-server runs
them) and compares everything observable: which calls succeed, the status
code of those that fail, and the pods and containers listed with their
states, exit codes and reasons. Shims join by registration: every entry
point in ``pycri.shims`` except the fake is tested.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.errors import CRIError
from pycri.registry import ShimLoadError, load_shim
from pycri.testing import engine_shims, require_real
from pycri_shims.fake import FakeShim

pytestmark = pytest.mark.real

#: commands whose behaviour both a real busybox and the fake's shell agree on
COMMANDS = {
    "sleeper": ["sleep", "3600"],
    "ok": ["sh", "-c", "echo done"],
    "fails": ["sh", "-c", "exit 3"],
}
SETTLE_SECONDS = 20.0


def _outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except CRIError as err:
        return err.code.name
    return "OK"


class Twin:
    """One runtime under test, with ids mapped from the machine's logical names."""

    def __init__(self, runtime: CRIRuntime, run_id: str) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.pods: dict[str, str] = {}
        self.containers: dict[str, str] = {}

    def pod_config(self, pod: str) -> cri.PodSandboxConfig:
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=pod, namespace="diff", uid=f"{self.run_id}-{pod}"),
            labels={"pycri.test": self.run_id},
        )

    def snapshot(self) -> tuple[list[tuple[str, int]], list[tuple[str, int, int, str]]]:
        selector = {"pycri.test": self.run_id}
        pods = self.runtime.list_pod_sandbox(
            cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
        ).items
        names = {v: k for k, v in self.containers.items()}
        containers = self.runtime.list_containers(
            cri.ListContainersRequest(filter=cri.ContainerFilter(label_selector=selector))
        ).containers
        rows = []
        for c in containers:
            status = self.runtime.container_status(
                cri.ContainerStatusRequest(container_id=c.id)
            ).status
            rows.append((names.get(c.id, "?"), status.state, status.exit_code, status.reason))
        return sorted((p.metadata.name, p.state) for p in pods), sorted(rows)

    def settle(self) -> None:
        """Wait until no short-lived command is still running (real engines take time)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        for name, container_id in self.containers.items():
            if name.split("-")[0] == "sleeper":
                continue
            while time.monotonic() < deadline:
                try:
                    status = self.runtime.container_status(
                        cri.ContainerStatusRequest(container_id=container_id)
                    ).status
                except CRIError:
                    break
                if status.state != cri.CONTAINER_RUNNING:
                    break
                time.sleep(0.1)

    def cleanup(self) -> None:
        for pod_id in self.pods.values():
            self.runtime.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


@pytest.fixture(params=engine_shims())
def engine_runtime(request: pytest.FixtureRequest) -> Iterator[CRIRuntime]:
    try:
        shim = load_shim(request.param)
        shim.runtime_version()
    except (ShimLoadError, CRIError) as err:
        require_real(False, f"the {request.param} shim is not usable here: {err}")
        raise
    runtime = CRIRuntime(shim)
    yield runtime
    runtime.close()


def test_engine_shim_matches_the_fake(engine_runtime: CRIRuntime) -> None:
    class Machine(RuleBasedStateMachine):
        pods = Bundle("pods")
        containers = Bundle("containers")

        @initialize()
        def setup(self) -> None:
            run_id = uuid.uuid4().hex[:12]
            self.model = Twin(CRIRuntime(FakeShim()), run_id)
            self.real = Twin(engine_runtime, run_id)
            self.counter = 0

        def both(self, action: Callable[[Twin], Any]) -> str:
            expected, actual = (
                _outcome(lambda: action(self.model)),
                _outcome(lambda: action(self.real)),
            )
            assert actual == expected, (
                f"{self.real.runtime.shim.name} said {actual}, fake {expected}"
            )
            return actual

        @rule(target=pods)
        def run_pod(self) -> str:
            self.counter += 1
            name = f"p{self.counter}"

            def run(twin: Twin) -> None:
                response = twin.runtime.run_pod_sandbox(
                    cri.RunPodSandboxRequest(config=twin.pod_config(name))
                )
                twin.pods[name] = response.pod_sandbox_id

            self.both(run)
            return name

        @rule(
            target=containers,
            pod=pods,
            kind=st.sampled_from(sorted(COMMANDS)),
            start=st.booleans(),
        )
        def create(self, pod: str, kind: str, start: bool) -> str:
            self.counter += 1
            name = f"{kind}-{self.counter}"

            def create(twin: Twin) -> None:
                config = cri.ContainerConfig(
                    metadata=cri.ContainerMetadata(name=name),
                    image=cri.ImageSpec(image="docker.io/library/busybox:latest"),
                    command=COMMANDS[kind],
                    labels={"pycri.test": twin.run_id},
                )
                response = twin.runtime.create_container(
                    cri.CreateContainerRequest(
                        pod_sandbox_id=twin.pods.get(pod, "0" * 64),
                        config=config,
                        sandbox_config=twin.pod_config(pod),
                    )
                )
                twin.containers[name] = response.container_id
                if start:
                    twin.runtime.start_container(
                        cri.StartContainerRequest(container_id=response.container_id)
                    )

            self.both(create)
            return name

        @rule(container=containers)
        def start(self, container: str) -> None:
            self.both(
                lambda t: t.runtime.start_container(
                    cri.StartContainerRequest(container_id=t.containers.get(container, "0" * 64))
                )
            )

        @rule(container=containers)
        def stop(self, container: str) -> None:
            self.both(
                lambda t: t.runtime.stop_container(
                    cri.StopContainerRequest(
                        container_id=t.containers.get(container, "0" * 64), timeout=0
                    )
                )
            )

        @rule(container=containers)
        def remove(self, container: str) -> None:
            self.both(
                lambda t: t.runtime.remove_container(
                    cri.RemoveContainerRequest(container_id=t.containers.get(container, "0" * 64))
                )
            )

        @rule(container=containers)
        def exec_sync(self, container: str) -> None:
            def run(twin: Twin) -> None:
                result = twin.runtime.exec_sync(
                    cri.ExecSyncRequest(
                        container_id=twin.containers.get(container, "0" * 64),
                        cmd=["sh", "-c", "echo hi; exit 2"],
                        timeout=10,
                    )
                )
                assert (result.stdout, result.exit_code) == (b"hi\n", 2)

            self.both(run)

        @rule(pod=pods)
        def stop_pod(self, pod: str) -> None:
            self.both(
                lambda t: t.runtime.stop_pod_sandbox(
                    cri.StopPodSandboxRequest(pod_sandbox_id=t.pods.get(pod, "0" * 64))
                )
            )

        @rule(pod=pods)
        def remove_pod(self, pod: str) -> None:
            self.both(
                lambda t: t.runtime.remove_pod_sandbox(
                    cri.RemovePodSandboxRequest(pod_sandbox_id=t.pods.get(pod, "0" * 64))
                )
            )

        @invariant()
        def same_pods_and_containers(self) -> None:
            if not hasattr(self, "model"):
                return
            self.model.settle()
            self.real.settle()
            assert self.real.snapshot() == self.model.snapshot()

        def teardown(self) -> None:
            for twin in (getattr(self, "real", None), getattr(self, "model", None)):
                if twin is not None:
                    twin.cleanup()
            if hasattr(self, "model"):
                self.model.runtime.close()

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=8,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )
