"""Pods for the conformance tests, each removed at teardown, and waiting for a state."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient

__all__ = ["PodFactory", "wait_for"]


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class PodFactory:
    """Creates pods with unique names and removes every one of them at teardown."""

    def __init__(self, client: CRIClient, log_root: Path, image: str) -> None:
        self.client = client
        self.log_root = log_root
        self.image = image
        self.created: list[str] = []

    def config(self, name: str = "", **labels: str) -> cri.PodSandboxConfig:
        uid = uuid.uuid4().hex
        name = name or f"conf-{uid[:8]}"
        log_dir = self.log_root / uid
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, namespace="conformance", uid=uid),
            hostname=name,
            log_directory=str(log_dir),
            labels={"pycri.test": "conformance", **labels},
            annotations={"pycri.test/annotation": "yes"},
            linux=cri.LinuxPodSandboxConfig(),
        )

    def run(self, config: cri.PodSandboxConfig | None = None) -> tuple[str, cri.PodSandboxConfig]:
        config = config or self.config()
        pod_id = self.client.run_pod_sandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        self.created.append(pod_id)
        return pod_id, config

    def container(
        self,
        pod_id: str,
        pod_config: cri.PodSandboxConfig,
        name: str,
        command: list[str],
        *,
        start: bool = True,
        image: str = "",
        linux: cri.LinuxContainerConfig | None = None,
        **labels: str,
    ) -> str:
        config = cri.ContainerConfig(
            linux=linux,
            metadata=cri.ContainerMetadata(name=name),
            image=cri.ImageSpec(image=image or self.image),
            command=command,
            log_path=f"{name}.log",
            labels={"pycri.test": "conformance", **labels},
            annotations={"pycri.test/annotation": name},
            envs=[cri.KeyValue(key="GREETING", value="hello")],
        )
        container_id = self.client.create_container(
            cri.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config
            )
        ).container_id
        if start:
            self.client.start_container(cri.StartContainerRequest(container_id=container_id))
        return container_id

    def cleanup(self) -> None:
        for pod_id in self.created:
            self.client.stop_pod_sandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))
            self.client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
