"""The fake image store: "pulled" images with deterministic ids, sizes and configs.

A tag reference stands for a manifest whose digest is derived from the
reference, and the image id from that digest, so the same reference always
gives the same image and pulling it by its digest finds the same image
again. Each image carries a plausible default entrypoint/cmd chosen by the
repository's name: ``*pause*`` runs ``/pause``, ``nginx``/``redis``... run a
server until stopped, ``busybox``/``alpine`` and the rest run ``sh``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pycri.api import api_pb2 as cri
from pycri.core.filters import image_matches
from pycri.core.images import is_image_id, parse_reference
from pycri.errors import NotFoundError

__all__ = [
    "DEFAULT_PAUSE_IMAGE",
    "DEFAULT_PRELOAD",
    "FakeImage",
    "ImageConfig",
    "ImageStore",
    "image_config_for",
    "image_files",
]

DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
DEFAULT_PRELOAD = (DEFAULT_PAUSE_IMAGE, "docker.io/library/busybox:latest")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MIB = 1024 * 1024
#: busybox's /etc/passwd and /etc/group
_USERS_FILE = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUPS_FILE = "root:x:0:\nnogroup:x:65534:\n"


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config that decide how its containers run."""

    size: int
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ("sh",)
    env: tuple[tuple[str, str], ...] = (("PATH", _PATH),)
    working_dir: str = ""
    pause: bool = False
    #: the config's ``User`` ("" for root) and the image's /etc/passwd and /etc/group
    user: str = ""
    passwd: str = _USERS_FILE
    group: str = _GROUPS_FILE


# Keyed by the last component of the repository path.
_CONFIGS: dict[str, ImageConfig] = {
    "busybox": ImageConfig(size=4_261_550),
    "alpine": ImageConfig(size=7_797_760, cmd=("/bin/sh",)),
    "ubuntu": ImageConfig(size=78_118_912, cmd=("/bin/bash",)),
    "debian": ImageConfig(size=116_531_200, cmd=("bash",)),
    "nginx": ImageConfig(
        size=192_741_376,
        entrypoint=("/docker-entrypoint.sh",),
        cmd=("nginx", "-g", "daemon off;"),
        env=(("PATH", _PATH), ("NGINX_VERSION", "1.27.3")),
    ),
    "redis": ImageConfig(
        size=117_440_512,
        entrypoint=("docker-entrypoint.sh",),
        cmd=("redis-server",),
        env=(("PATH", _PATH), ("REDIS_VERSION", "7.4.1")),
        working_dir="/data",
    ),
    "httpd": ImageConfig(
        size=148_897_792, cmd=("httpd-foreground",), working_dir="/usr/local/apache2"
    ),
    "postgres": ImageConfig(
        size=434_110_464, entrypoint=("docker-entrypoint.sh",), cmd=("postgres",)
    ),
    "mysql": ImageConfig(size=603_979_776, entrypoint=("docker-entrypoint.sh",), cmd=("mysqld",)),
    "memcached": ImageConfig(
        size=84_934_656, entrypoint=("docker-entrypoint.sh",), cmd=("memcached",)
    ),
    "mongo": ImageConfig(size=854_589_440, entrypoint=("docker-entrypoint.sh",), cmd=("mongod",)),
    "etcd": ImageConfig(size=57_475_072, cmd=("/usr/local/bin/etcd",)),
    "coredns": ImageConfig(size=61_245_440, entrypoint=("/coredns",), cmd=()),
    # critest's image: default-user (1000) is a member of group 50000 in its /etc/group
    "test-image-predefined-group": ImageConfig(
        size=2_979_840,
        user="1000",
        passwd=_USERS_FILE + "default-user:x:1000:1000::/home/default-user:/bin/sh\n",
        group="root:x:0:\nwheel:x:10:root\ndefault-user:x:1000:\n"
        "group-defined-in-image:x:50000:default-user\n",
    ),
}


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def image_config_for(repository: str) -> ImageConfig:
    """The fake config of an image of ``repository`` (e.g. ``docker.io/library/nginx``)."""
    base = repository.rsplit("/", 1)[-1]
    if "pause" in base:
        return ImageConfig(size=744_448, entrypoint=("/pause",), cmd=(), pause=True)
    if base in _CONFIGS:
        return _CONFIGS[base]
    # Unknown images get a deterministic size between 5 and 100 MiB, and sh.
    seed = int(hashlib.sha256(repository.encode()).hexdigest()[:8], 16)
    return ImageConfig(size=5 * _MIB + seed % (95 * _MIB))


@dataclass
class FakeImage:
    id: str
    repository: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    config: ImageConfig

    @property
    def name(self) -> str:
        """The reference to show for the image (its first tag, else digest)."""
        return (self.repo_tags or self.repo_digests or [self.id])[0]

    def to_message(self) -> cri.Image:
        return cri.Image(
            id=self.id,
            repo_tags=self.repo_tags,
            repo_digests=self.repo_digests,
            size=self.size,
            username="",
            spec=cri.ImageSpec(image=self.name),
        )

    def argv(self, command: Sequence[str], args: Sequence[str]) -> list[str]:
        """What a container runs, resolved as Docker does from its config and the image's."""
        if command:
            return [*command, *args]
        return [*self.config.entrypoint, *(args or self.config.cmd)]


def _manifest_digest(ref: str) -> str:
    """The manifest digest a reference stands for (its own digest, if it has one)."""
    parsed = parse_reference(ref)
    return parsed.digest or _digest(f"pycri-fake manifest {parsed}")


class ImageStore:
    """Images by id; callers serialise access (the shim's lock)."""

    def __init__(self, registry: Iterable[str] | None = None) -> None:
        self._images: dict[str, FakeImage] = {}
        self.registry: frozenset[str] | None = None
        self._registry_digests: frozenset[str] = frozenset()
        if registry is not None:
            refs = frozenset(str(parse_reference(r)) for r in registry)
            self.registry = refs
            self._registry_digests = frozenset(
                f"{parse_reference(r).repository}@{_manifest_digest(r)}" for r in refs
            )

    def check_pullable(self, ref: str) -> None:
        """NotFoundError unless the fake registry serves ``ref`` (a normalised reference)."""
        if self.registry is None:
            return
        if ref in self.registry or ref in self._registry_digests:
            return
        raise NotFoundError(
            f"failed to resolve reference {ref!r}: {ref} not found in the fake registry "
            f"(it serves {len(self.registry)} image(s))"
        )

    def add(self, ref: str) -> FakeImage:
        """Store the image ``ref`` (normalised) names, or return it if present."""
        parsed = parse_reference(ref)
        digest = _manifest_digest(ref)
        image_id = _digest(f"pycri-fake config {digest}")
        digest_ref = f"{parsed.repository}@{digest}"
        image = self._images.get(image_id)
        if image is None:
            config = image_config_for(parsed.repository)
            image = FakeImage(
                id=image_id,
                repository=parsed.repository,
                repo_tags=[],
                repo_digests=[digest_ref],
                # a little deterministic variety between tags of one repository
                size=config.size + int(digest[7:11], 16) % 4096,
                config=config,
            )
            self._images[image_id] = image
        if parsed.tag is not None and ref not in image.repo_tags:
            self._untag(ref)
            image.repo_tags.append(ref)
        return image

    def _untag(self, ref: str) -> None:
        for image in self._images.values():
            if ref in image.repo_tags:
                image.repo_tags.remove(ref)

    def find(self, ref: str) -> FakeImage | None:
        """The image a normalised reference, id or id prefix names."""
        if not ref:
            return None
        if is_image_id(ref) and ref in self._images:
            return self._images[ref]
        for image in self._images.values():
            if image_matches(image.to_message(), ref):
                return image
        return None

    def remove(self, image: FakeImage) -> None:
        self._images.pop(image.id, None)

    def images(self) -> list[FakeImage]:
        return sorted(self._images.values(), key=lambda i: i.name)

    def total_size(self) -> int:
        return sum(image.size for image in self._images.values())


_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
_GROUP = b"root:x:0:\nnobody:x:65534:\n"


def image_files(image: FakeImage) -> dict[str, bytes]:
    """The files an image volume of ``image`` shows: a small busybox-shaped root."""
    if image.config.pause:
        return {"/pause": b"\x7fELF pause\n"}
    files = {f"/bin/{tool}": b"\x7fELF busybox\n" for tool in ("busybox", "sh", "ls", "cat")}
    files.update({"/etc/passwd": _PASSWD, "/etc/group": _GROUP, "/etc/hostname": b""})
    return files
