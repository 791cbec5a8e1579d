"""The CRI image service on Docker's image store.

RemoveImage follows containerd's CRI, not ``docker rmi``: it removes every
name of the image and answers OK even while containers use it. Docker keeps
an image a running container uses (it refuses even a forced delete), so the
image is left without any name; the CRI no longer sees it (ListImages and
ImageStatus leave nameless images out, as containerd has no such images),
the containers keep running, and the next RunPodSandbox or PullImage fetches
it again. Docker keeps the nameless image after those containers are gone,
until ``docker image prune``. The sandbox (pause) image is reported ``pinned``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import docker.auth
import docker.errors

from pycri.api import api_pb2 as cri
from pycri.core.images import (
    is_image_id,
    is_sandbox_image,
    normalize_reference,
    parse_reference,
)
from pycri.errors import (
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
)
from pycri.shim import PullProgress
from pycri_shims.docker.connection import DockerConnection
from pycri_shims.docker.streams import open_stream

__all__ = ["DockerImages", "auth_header_config"]

log = logging.getLogger(__name__)

_NONE = ("<none>:<none>", "<none>@<none>")
_NOT_FOUND = ("not found", "manifest unknown", "does not exist", "no such")
_LAYER_DONE = ("Download complete", "Pull complete", "Already exists")


def _normalized(refs: Iterable[str] | None) -> list[str]:
    """Docker's short names (``busybox:latest``) as the CRI's full ones."""
    out = []
    for ref in refs or ():
        if ref in _NONE:
            continue
        try:
            out.append(normalize_reference(ref))
        except InvalidArgumentError:
            out.append(ref)
    return out


def _user(config_user: str) -> tuple[cri.Int64Value | None, str]:
    """(uid, username) of an image's USER, as the kubelet's runAsNonRoot check wants them."""
    user = config_user.partition(":")[0]
    if not user:
        return None, ""
    if user.isdigit():
        return cri.Int64Value(value=int(user)), ""
    return None, user


def _image(data: Mapping[str, Any]) -> cri.Image:
    image = cri.Image(
        id=data["Id"],
        repo_tags=_normalized(data.get("RepoTags")),
        repo_digests=_normalized(data.get("RepoDigests")),
        size=max(0, int(data.get("Size") or 0)),
        spec=cri.ImageSpec(image=data["Id"]),
    )
    config = data.get("Config")
    if config is not None:  # inspect data, not a list entry
        uid, username = _user(config.get("User") or "")
        if uid is not None:
            image.uid.CopyFrom(uid)
        image.username = username
    return image


def auth_header_config(auth: cri.AuthConfig, server: str) -> dict[str, str]:
    """CRI AuthConfig -> the JSON Docker expects in X-Registry-Auth."""
    username, password = auth.username, auth.password
    if auth.auth and not (username or password):
        # dockerd does not decode "auth" itself (the docker CLI does)
        try:
            decoded = base64.b64decode(auth.auth).decode()
        except ValueError as err:
            raise InvalidArgumentError("auth.auth is not base64 of user:password") from err
        username, _, password = decoded.partition(":")
    fields = {
        "username": username,
        "password": password,
        "serveraddress": auth.server_address or server,
        "identitytoken": auth.identity_token,
        "registrytoken": auth.registry_token,
    }
    return {key: value for key, value in fields.items() if value}


class _Progress:
    """Sums Docker's per-layer pull progress into one byte count."""

    def __init__(self, image: str, sink: Callable[[PullProgress], None] | None) -> None:
        self.image = image
        self.sink = sink
        self.current: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def update(self, event: Mapping[str, Any]) -> None:
        layer = str(event.get("id", ""))
        status = str(event.get("status", ""))
        detail = event.get("progressDetail") or {}
        if status == "Downloading" and detail.get("total"):
            self.total[layer] = int(detail["total"])
            self.current[layer] = int(detail.get("current") or 0)
        elif status in _LAYER_DONE and layer in self.total:
            self.current[layer] = self.total[layer]
        text = f"{status} {layer}".strip() if status in _LAYER_DONE or detail else status
        log.debug("pull %s: %s", self.image, text)
        if self.sink is not None:
            self.sink(
                PullProgress(self.image, text, sum(self.current.values()), sum(self.total.values()))
            )


class DockerImages:
    """Images of one Docker shim; a pull with no progress for ``stall_timeout`` s fails."""

    def __init__(
        self, connection: DockerConnection, stall_timeout: float = 60.0, sandbox_image: str = ""
    ) -> None:
        self._conn = connection
        self.stall_timeout = stall_timeout
        #: reported pinned, so that the kubelet's image GC keeps it
        self.sandbox_image = sandbox_image

    def _cri_image(self, data: Mapping[str, Any]) -> cri.Image | None:
        """The CRI's view of a Docker image: None for one without any name (see above)."""
        image = _image(data)
        if not image.repo_tags and not image.repo_digests:
            return None
        image.pinned = is_sandbox_image(image, self.sandbox_image)
        return image

    def list_images(self) -> list[cri.Image]:
        with self._conn.errors("listing images"):
            entries: list[Mapping[str, Any]] = self._conn.api.images()
        return [image for entry in entries if (image := self._cri_image(entry)) is not None]

    def _inspect(self, image: str) -> Mapping[str, Any] | None:
        try:
            with self._conn.errors(f"inspecting image {image}"):
                data: Mapping[str, Any] = self._conn.api.inspect_image(image)
        except NotFoundError:
            return None
        return data

    def image_status(self, image: str) -> cri.Image | None:
        data = self._inspect(image)
        return None if data is None else self._cri_image(data)

    def pull_image(
        self,
        image: str,
        auth: cri.AuthConfig | None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> str:
        ref = parse_reference(image)
        what = f"pulling {image}"
        with self._conn.errors(what):
            api = self._conn.api
            if auth is not None:
                header = docker.auth.encode_header(auth_header_config(auth, ref.domain))
            else:  # the node's own credentials, as `docker pull` would use
                header = docker.auth.get_config_header(api, ref.domain)
            response = open_stream(
                api,
                "POST",
                "/images/create",
                params={"fromImage": ref.repository, "tag": ref.digest or ref.tag},
                headers={"X-Registry-Auth": header} if header else None,
                read_timeout=self.stall_timeout,
            )
        tracker = _Progress(image, progress)
        try:
            with self._conn.errors(what):
                for line in response.iter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    if "error" in event:
                        raise _pull_error(image, str(event["error"]))
                    tracker.update(event)
        except DeadlineExceededError as err:
            raise DeadlineExceededError(
                f"{what}: no progress for {self.stall_timeout:g}s; the registry stalled"
            ) from err
        finally:
            response.close()
        data = self._inspect(image)
        if data is None:
            raise InternalError(f"{what}: Docker reported success but has no such image")
        return str(data["Id"])

    def remove_image(self, image: str) -> None:
        """Remove every name of the image, then the image unless a running container uses it."""
        data = self._inspect(image)
        if data is None or self._cri_image(data) is None:
            raise NotFoundError(f"image {image} not found")
        image_id = str(data["Id"])
        with self._conn.errors(f"removing image {image}"):
            api = self._conn.api
            # Docker deletes by id only an image with one name: untag first. force: a
            # stopped container's image goes too (containerd's CRI removes it as well),
            # a running container's stays, nameless, until that container is removed.
            for ref in [*(data.get("RepoTags") or []), *(data.get("RepoDigests") or [])]:
                if ref not in _NONE and not is_image_id(ref):
                    _remove(api, ref)
            _remove(api, image_id)

    def image_fs_info(self, root_dir: str) -> cri.ImageFsInfoResponse:
        """Usage of the filesystem under Docker's root dir (images and writable layers)."""
        now = time.time_ns()
        try:
            fs = os.statvfs(root_dir)
        except OSError:
            fs = None
        if fs is not None:
            used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
            inodes = fs.f_files - fs.f_ffree
        else:  # a remote daemon: ask it (slower: it sizes every layer)
            with self._conn.errors("measuring Docker's disk usage"):
                used = int(self._conn.api.df().get("LayersSize") or 0)
            inodes = 0
        usage = cri.FilesystemUsage(
            timestamp=now,
            fs_id=cri.FilesystemIdentifier(mountpoint=root_dir),
            used_bytes=cri.UInt64Value(value=used),
            inodes_used=cri.UInt64Value(value=inodes),
        )
        return cri.ImageFsInfoResponse(image_filesystems=[usage], container_filesystems=[usage])


def _remove(api: Any, ref: str) -> None:
    try:
        api.remove_image(ref, force=True)
    except docker.errors.NotFound:
        pass  # an earlier untag already deleted it
    except docker.errors.APIError as err:
        if err.status_code == 409:
            # "cannot be forced": a running container uses it; its names are gone already
            log.debug("image %s kept for the containers running it: %s", ref, err.explanation)
            return
        # a concurrent RemoveImage deleted it between our inspect and this call:
        # dockerd 20.10 says so with a 500, not a 404
        if "unrecognized image id" not in str(err.explanation or err).lower():
            raise


def _pull_error(image: str, message: str) -> Exception:
    if any(marker in message.lower() for marker in _NOT_FOUND):
        return NotFoundError(f"pulling {image}: {message}")
    # Not UNAVAILABLE even for a registry that is down: that code means "the
    # CRI runtime is down" to the kubelet and pycri's client.
    return InternalError(f"pulling {image}: {message}")
