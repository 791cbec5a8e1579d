"""The conformance tests of the container RPCs: lifecycle, exit, logs, ExecSync, users,
names, filters."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.logs import parse_log_line
from pycri.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from pycri.testing.conformance.base import ConformanceBase
from pycri.testing.conformance.config import ConformanceConfig
from pycri.testing.conformance.pods import PodFactory, wait_for

__all__ = ["ContainerConformance"]


class ContainerConformance(ConformanceBase):
    """Containers."""

    def test_container_lifecycle(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        pod_id, pod_config = pods.run()
        container_id = pods.container(pod_id, pod_config, "app", ["sleep", "60"], start=False)
        created = self.status(client, container_id)
        assert created.state == cri.CONTAINER_CREATED
        assert created.metadata.name == "app"
        assert created.created_at > 0
        assert created.labels["pycri.test"] == "conformance"
        assert created.annotations["pycri.test/annotation"] == "app"

        client.start_container(cri.StartContainerRequest(container_id=container_id))
        running = self.status(client, container_id)
        assert running.state == cri.CONTAINER_RUNNING
        assert running.started_at >= running.created_at
        with pytest.raises(FailedPreconditionError):
            client.start_container(cri.StartContainerRequest(container_id=container_id))

        listed = client.list_containers(
            cri.ListContainersRequest(filter=cri.ContainerFilter(pod_sandbox_id=pod_id))
        ).containers
        assert [(c.id, c.pod_sandbox_id, c.state) for c in listed] == [
            (container_id, pod_id, cri.CONTAINER_RUNNING)
        ]

        client.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=2))
        stopped = self.status(client, container_id)
        assert stopped.state == cri.CONTAINER_EXITED
        assert stopped.finished_at >= stopped.started_at
        assert stopped.exit_code != 0
        client.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=2))

        client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
        client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
        with pytest.raises(NotFoundError):
            self.status(client, container_id)

    def test_exit_code_reason_and_log(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        pod_id, pod_config = pods.run()
        ok = pods.container(pod_id, pod_config, "ok", ["echo", "hi"])
        bad = pods.container(pod_id, pod_config, "bad", ["sh", "-c", "echo oops >&2; exit 3"])

        ok_status = self.wait_exited(client, ok, conformance)
        assert (ok_status.exit_code, ok_status.reason) == (0, "Completed")
        bad_status = self.wait_exited(client, bad, conformance)
        assert (bad_status.exit_code, bad_status.reason) == (3, "Error")

        log_path = Path(pod_config.log_directory) / "ok.log"
        assert ok_status.log_path == str(log_path)
        wait_for(lambda: log_path.exists() and log_path.read_bytes() != b"", 10, "the ok log")
        lines = [parse_log_line(raw) for raw in log_path.read_bytes().splitlines()]
        assert [(ln.stream, ln.partial, ln.message) for ln in lines] == [("stdout", False, b"hi")]

        bad_log = Path(pod_config.log_directory) / "bad.log"
        wait_for(lambda: bad_log.exists() and bad_log.read_bytes() != b"", 10, "the bad log")
        bad_lines = [parse_log_line(raw) for raw in bad_log.read_bytes().splitlines()]
        assert [(ln.stream, ln.message) for ln in bad_lines] == [("stderr", b"oops")]

    def test_log_is_complete_once_exited(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """The kubelet (and critest) read the log as soon as the status says EXITED."""
        pod_id, pod_config = pods.run()

        def once(index: int) -> list[bytes]:
            name = f"exits-{index}"
            container_id = pods.container(pod_id, pod_config, name, ["echo", f"line {index}"])
            log_path = Path(pod_config.log_directory) / f"{name}.log"
            deadline = time.monotonic() + conformance.state_timeout
            # read in the same breath as the first status that says EXITED
            while self.status(client, container_id).state != cri.CONTAINER_EXITED:
                assert time.monotonic() < deadline, f"{name} did not exit"
                time.sleep(0.01)
            raw = log_path.read_bytes() if log_path.exists() else b""
            client.remove_container(cri.RemoveContainerRequest(container_id=container_id))
            return [parse_log_line(line).message for line in raw.splitlines()]

        rounds = conformance.exit_log_rounds
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = list(pool.map(once, range(rounds)))
        lost = [i for i, lines in enumerate(found) if lines != [f"line {i}".encode()]]
        assert not lost, f"{len(lost)} of {rounds} logs incomplete at EXITED: {lost[:10]}"

    def test_log_is_whole_after_a_stop_mid_write(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """Stopped while it writes: at EXITED the log has every line, in order and once,
        and nothing comes after (the docker shim cuts its log follow short at the
        exit and reads the rest again: a frame cut in two must be read again,
        never twice)."""
        pod_id, pod_config = pods.run()
        burst = "i=0; while true; do echo line $i; i=$((i+1)); done"  # as fast as it goes
        for index in range(3):
            name = f"stopped-{index}"
            container_id = pods.container(pod_id, pod_config, name, ["sh", "-c", burst])
            log_path = Path(pod_config.log_directory) / f"{name}.log"

            def written(path: Path = log_path) -> bool:
                return path.exists() and path.stat().st_size > 2000

            wait_for(written, 20, "lines")
            client.stop_container(cri.StopContainerRequest(container_id=container_id, timeout=0))
            assert self.status(client, container_id).state == cri.CONTAINER_EXITED
            at_exit = log_path.read_bytes()
            lines = [parse_log_line(raw) for raw in at_exit.splitlines()]
            assert not [ln for ln in lines if ln.partial]
            numbers = [int(ln.message.split()[1]) for ln in lines]
            assert numbers == list(range(len(numbers))), "lines lost or written twice"
            time.sleep(0.5)
            assert log_path.read_bytes() == at_exit, "lines came after EXITED"
            client.remove_container(cri.RemoveContainerRequest(container_id=container_id))

    def test_exec_sync(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        pod_id, pod_config = pods.run()
        container_id = pods.container(pod_id, pod_config, "app", ["sleep", "60"])
        result = client.exec_sync(
            cri.ExecSyncRequest(
                container_id=container_id, cmd=["sh", "-c", "echo $GREETING; exit 4"], timeout=10
            )
        )
        assert (result.stdout, result.exit_code) == (b"hello\n", 4)
        with pytest.raises(DeadlineExceededError):
            client.exec_sync(
                cri.ExecSyncRequest(container_id=container_id, cmd=["sleep", "30"], timeout=1)
            )
        with pytest.raises(InvalidArgumentError):
            client.exec_sync(cri.ExecSyncRequest(container_id=container_id, cmd=[]))

    def test_container_status_user(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig
    ) -> None:
        """ContainerStatus.user is who the first process is, as ``id`` in the container says."""
        pod_id, pod_config = pods.run()
        cases: list[tuple[str, str, list[int]]] = [("who", conformance.image, [])]
        pulled = False
        if conformance.group_image:
            pulled = not client.image_status(
                cri.ImageStatusRequest(image=cri.ImageSpec(image=conformance.group_image))
            ).HasField("image")
            if pulled:
                client.pull_image(
                    cri.PullImageRequest(image=cri.ImageSpec(image=conformance.group_image))
                )
            # Merge: the groups the image's /etc/group gives uid 1000 are kept
            cases.append(("who-in-group", conformance.group_image, [50000]))
        try:
            for name, image, image_groups in cases:
                context = cri.LinuxContainerSecurityContext(
                    run_as_user=cri.Int64Value(value=1000), supplemental_groups=[1234, 5678]
                )
                container_id = pods.container(
                    pod_id,
                    pod_config,
                    name,
                    ["sleep", "3600"],
                    image=image,
                    linux=cri.LinuxContainerConfig(security_context=context),
                )

                def run(*cmd: str, container_id: str = container_id) -> list[int]:
                    request = cri.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=30)
                    result = client.exec_sync(request)
                    assert result.exit_code == 0, result.stderr
                    return [int(n) for n in result.stdout.split()]

                status = self.status(client, container_id)
                assert status.HasField("user"), "a running container reports its user"
                user = status.user.linux
                assert (user.uid, [user.uid]) == (1000, run("id", "-u"))
                assert [user.gid] == run("id", "-g")
                assert sorted(user.supplemental_groups) == sorted(run("id", "-G"))
                assert {1234, 5678, user.gid, *image_groups} <= set(user.supplemental_groups)

                # not running: what the process was given, or nothing (an engine that
                # records no resolved user), never something else
                client.stop_container(cri.StopContainerRequest(container_id=container_id))
                stopped = self.status(client, container_id)
                if stopped.HasField("user"):
                    assert (stopped.user.linux.uid, stopped.user.linux.gid) == (user.uid, user.gid)
                    assert sorted(stopped.user.linux.supplemental_groups) == sorted(
                        user.supplemental_groups
                    )
        finally:
            pods.cleanup()
            pods.created.clear()
            if pulled:
                client.remove_image(
                    cri.RemoveImageRequest(image=cri.ImageSpec(image=conformance.group_image))
                )

    def test_create_in_stopped_pod_fails(self, client: CRIClient, pods: PodFactory) -> None:
        pod_id, pod_config = pods.run()
        client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        with pytest.raises(FailedPreconditionError):
            pods.container(pod_id, pod_config, "late", ["sleep", "1"], start=False)

    def test_duplicate_container_name_is_already_exists(
        self, client: CRIClient, pods: PodFactory
    ) -> None:
        pod_id, pod_config = pods.run()
        pods.container(pod_id, pod_config, "twin", ["sleep", "60"], start=False)
        with pytest.raises(AlreadyExistsError):
            pods.container(pod_id, pod_config, "twin", ["sleep", "60"], start=False)

    def test_container_filters(self, client: CRIClient, pods: PodFactory) -> None:
        pod_id, pod_config = pods.run()
        running = pods.container(pod_id, pod_config, "run", ["sleep", "60"], role="a")
        created = pods.container(pod_id, pod_config, "wait", ["sleep", "60"], start=False, role="b")
        other_pod, other_config = pods.run()
        elsewhere = pods.container(other_pod, other_config, "run", ["sleep", "60"], role="a")

        def ids(f: cri.ContainerFilter) -> set[str]:
            found = client.list_containers(cri.ListContainersRequest(filter=f)).containers
            return {c.id for c in found} & {running, created, elsewhere}

        assert ids(cri.ContainerFilter(pod_sandbox_id=pod_id)) == {running, created}
        state = cri.ContainerStateValue(state=cri.CONTAINER_CREATED)
        assert ids(cri.ContainerFilter(state=state)) == {created}
        assert ids(cri.ContainerFilter(label_selector={"role": "a"})) == {running, elsewhere}
        assert ids(cri.ContainerFilter(id=running[:12])) == {running}

    def test_remove_pod_removes_its_containers(self, client: CRIClient, pods: PodFactory) -> None:
        pod_id, pod_config = pods.run()
        container_id = pods.container(pod_id, pod_config, "app", ["sleep", "60"])
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        with pytest.raises(NotFoundError):
            self.status(client, container_id)
        assert pod_id not in {p.id for p in client.list_pod_sandbox().items}

    def test_reopen_log_and_stats(self, client: CRIClient, pods: PodFactory) -> None:
        pod_id, pod_config = pods.run()
        container_id = pods.container(pod_id, pod_config, "app", ["sleep", "60"])
        log_path = Path(pod_config.log_directory) / "app.log"
        wait_for(log_path.exists, 10, "the log file")
        log_path.rename(log_path.with_suffix(".log.1"))
        client.reopen_container_log(cri.ReopenContainerLogRequest(container_id=container_id))
        assert log_path.exists()

        stats = client.container_stats(cri.ContainerStatsRequest(container_id=container_id))
        assert stats.stats.attributes.id == container_id
        listed = client.list_container_stats(
            cri.ListContainerStatsRequest(filter=cri.ContainerStatsFilter(pod_sandbox_id=pod_id))
        ).stats
        assert [s.attributes.id for s in listed] == [container_id]
