"""The shim conformance suite, run against the Docker shim and a real dockerd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from test_docker_support import (
    BUSYBOX,
    REGISTRY_BUSYBOX,
    docker_client,
    forget_pulled,
    registry_image_id,
    remove_leftovers,
    require_distinct_pull_image,
    scratch_dir,
)

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.errors import InvalidArgumentError
from pycri.shim import Shim
from pycri.testing.conformance import ConformanceConfig, PodFactory, ShimConformance
from pycri.testing.submounts import tree_with_submount
from pycri_shims.docker import DockerShim

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def docker_sdk() -> Iterator[Any]:
    client = docker_client()
    yield client
    left = remove_leftovers(client)
    forget_pulled(client)
    client.close()
    assert not left, f"containers left behind: {left}"


@pytest.fixture
def distinct_pull_image(docker_sdk: Any) -> None:
    require_distinct_pull_image(docker_sdk)


class TestDockerConformance(ShimConformance):
    @pytest.fixture
    def conformance(self) -> ConformanceConfig:
        return ConformanceConfig(image=BUSYBOX, pull_image=REGISTRY_BUSYBOX)

    @pytest.fixture
    def tmp_path(self) -> Iterator[Path]:
        # pytest's own tmp_path outlives the run; the suite's logs and socket must not
        with scratch_dir() as path:
            yield path

    @pytest.fixture
    def shim(self, docker_sdk: Any) -> Iterator[DockerShim]:
        shim = DockerShim()
        yield shim
        shim.close()

    def image_volume_leftovers(self, shim: Shim) -> list[str]:
        assert isinstance(shim, DockerShim)
        return shim.containers.volumes.leftovers()

    @pytest.mark.usefixtures("distinct_pull_image")
    def test_image_lifecycle(self, client: CRIClient, conformance: ConformanceConfig) -> None:
        super().test_image_lifecycle(client, conformance)

    @pytest.mark.usefixtures("distinct_pull_image")
    def test_remove_image_of_a_running_container(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig, docker_sdk: Any
    ) -> None:
        try:
            super().test_remove_image_of_a_running_container(client, pods, conformance)
        finally:
            # Docker kept the image, nameless, for the running container: drop it too
            image_id = registry_image_id("pycri/busybox", "latest")
            if image_id is not None:
                try:
                    docker_sdk.api.remove_image(image_id, force=True)
                except docker.errors.APIError:
                    pass  # gone, or a container (of another run) still uses it

    def test_recursive_read_only_staging_undone_when_create_fails(
        self, client: CRIClient, pods: PodFactory, conformance: ConformanceConfig, shim: DockerShim
    ) -> None:
        """Docker refuses the create after pycri staged the mount: the staging goes too."""
        pod_id, pod = pods.run()
        with scratch_dir() as scratch, tree_with_submount(scratch / "host") as tree:
            rro = cri.Mount(
                host_path=str(tree.path),
                container_path="/data",
                readonly=True,
                recursive_read_only=True,
            )
            twice = cri.Mount(host_path=str(tree.path), container_path="/data", readonly=True)
            config = cri.ContainerConfig(
                metadata=cri.ContainerMetadata(name="refused"),
                image=cri.ImageSpec(image=conformance.image),
                command=["sleep", "60"],
                mounts=[rro, twice],
            )
            request = cri.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=config, sandbox_config=pod
            )
            with pytest.raises(InvalidArgumentError, match="Duplicate mount point"):
                client.create_container(request)
            assert tree.copies() == 0
            assert not any(name.startswith("k8s_refused_") for name in shim.staging.staged())
