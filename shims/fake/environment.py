"""What a fake container's processes see: environment, identity, hostname, files.

Built once per container at CreateContainer from the image's config, the
container config and its pod: ``/etc/hosts``, ``/etc/resolv.conf``, small
host files of the mounts, image volumes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from pycri.api import api_pb2 as cri
from pycri.core.identity import resolve_identity
from pycri_shims.fake.image_store import FakeImage
from pycri_shims.fake.image_volumes import image_volume_files
from pycri_shims.fake.sh.context import ProcessContext
from pycri_shims.fake.sh.filesystem import FakeFS
from pycri_shims.fake.state import SandboxRecord

__all__ = ["process_context"]

#: host files larger than this are not copied into a container's in-memory filesystem
MAX_MOUNTED_FILE = 1024 * 1024


def _mounted_files(mounts: Iterable[cri.Mount]) -> dict[str, bytes]:
    """Small regular host files under the mounts, so that ``cat`` in a container sees them."""
    files: dict[str, bytes] = {}
    for mount in mounts:
        if not mount.host_path:
            continue
        source = Path(mount.host_path)
        try:
            if source.is_file():
                candidates = [(source, mount.container_path)]
            elif source.is_dir():
                candidates = [
                    (entry, f"{mount.container_path.rstrip('/')}/{entry.name}")
                    for entry in sorted(source.iterdir())[:100]
                    if entry.is_file()
                ]
            else:
                continue
            for path, target in candidates:
                if path.stat().st_size <= MAX_MOUNTED_FILE:
                    files[target] = path.read_bytes()
        except OSError:
            continue  # unreadable on this host: the container just does not see it
    return files


def process_context(
    sandbox: SandboxRecord,
    config: cri.ContainerConfig,
    image: FakeImage,
    find: Callable[[str], FakeImage],
) -> ProcessContext:
    """The environment, identity and files the container's processes see.

    ``find`` looks up the images of its image volumes.
    """
    hostname = sandbox.hostname
    env = dict(image.config.env)
    env["HOSTNAME"] = hostname
    env.update((kv.key, kv.value) for kv in config.envs)
    env.setdefault("HOME", "/root")
    security = config.linux.security_context
    who = resolve_identity(security, image.config.passwd, image.config.group, image.config.user)
    working_dir = config.working_dir or image.config.working_dir or "/"
    dns = sandbox.config.dns_config
    files = {
        "/etc/passwd": image.config.passwd.encode(),
        "/etc/group": image.config.group.encode(),
        "/etc/hostname": f"{hostname}\n".encode(),
        "/etc/hosts": (
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            + (f"{sandbox.ip}\t{hostname}\n" if sandbox.ip else "")
        ).encode(),
    }
    if sandbox.config.HasField("dns_config"):
        lines = [f"search {' '.join(dns.searches)}"] if dns.searches else []
        lines += [f"nameserver {server}" for server in dns.servers]
        lines += [f"options {' '.join(dns.options)}"] if dns.options else []
        files["/etc/resolv.conf"] = "".join(f"{line}\n" for line in lines).encode()
    files.update(_mounted_files(config.mounts))
    mount_dirs = [m.container_path for m in config.mounts]
    files.update(image_volume_files(config, find))
    read_only = [m.container_path for m in config.mounts if m.HasField("image")]
    return ProcessContext(
        env=env,
        hostname=hostname,
        working_dir=working_dir,
        fs=FakeFS(files, dirs=[working_dir, *mount_dirs], read_only=read_only),
        pid=1,
        ip=sandbox.ip,
        uid=who.uid,
        gid=who.gid,
        groups=tuple(sorted(who.groups)),  # as the kernel keeps them
        net=sandbox.network,
    )
