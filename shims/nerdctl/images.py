"""The CRI image service over ``nerdctl images / image inspect / pull / rmi``.

An image's CRI id is the digest of its target (manifest or index), the
IMAGE ID nerdctl prints, not containerd's config digest: two images pulled
from different registries share a config but are separate images here, so
removing one never removes the other.

The sandbox (pause) image is reported ``pinned``, as containerd's CRI does,
so the kubelet's image GC keeps it; RunPodSandbox pulls it when it is
missing (``sandbox_pull``), once for all the calls that found it so.
RemoveImage removes an image's names even while a running container uses
it, as containerd's CRI does (the container keeps its snapshot): nerdctl
refuses that ("cannot be forced"), so those names go through containerd's
own ``ctr``.

ImageStatus and ListImages start no process while the container view is
fresh and no image event of the namespace came since their last answer
(memo.ImageMemo); the shim's own pulls and removals forget them too.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pycri.api import api_pb2 as cri
from pycri.core.images import (
    ImageReference,
    SharedPull,
    is_image_id,
    is_sandbox_image,
    normalize_reference,
    parse_reference,
)
from pycri.errors import (
    CRIError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from pycri_shims.nerdctl.memo import ImageMemo
from pycri_shims.nerdctl.options import NerdctlOptions
from pycri_shims.nerdctl.runner import NerdctlRunner, error_for, fatal_messages
from pycri_shims.nerdctl.view import ContainerView

__all__ = ["ImageStore", "parse_size"]

_SIZE = re.compile(r"^\s*([0-9.]+)\s*([KMGTP]?i?B)\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5}
#: nerdctl's refusal to remove the image of a running container, even with -f
_IN_USE = "image is being used by running container"


def parse_size(text: str) -> int:
    """nerdctl's human sizes ("672.0 KiB", "2.0 MiB", "12 B") to bytes (rounded)."""
    match = _SIZE.match(text or "")
    if match is None:
        return 0
    number, unit = float(match[1]), match[2].upper()
    factor = _UNITS[unit[0]] if unit != "B" else 1
    if "I" in unit:  # binary units: KiB = 1024
        factor = 1024 ** "BKMGTP".index(unit[0])
    return int(number * factor)


def _digest_id(text: str) -> str:
    return text if text.startswith("sha256:") else f"sha256:{text}"


def _normalize(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        try:
            full = normalize_reference(name)
        except InvalidArgumentError:
            full = name
        if full not in out:
            out.append(full)
    return out


def _repo_digest(name: str, digest: str) -> str:
    try:
        return f"{parse_reference(name).repository}@{digest}"
    except InvalidArgumentError:
        return f"{name.split('@')[0].rsplit(':', 1)[0]}@{digest}"


def _user(image: cri.Image, user: str) -> None:
    name = user.split(":", 1)[0]
    if name.isdigit():
        image.uid.value = int(name)
    elif name:
        image.username = name


class ImageStore:
    """Image RPCs; one or two nerdctl processes each."""

    def __init__(self, runner: NerdctlRunner, options: NerdctlOptions, view: ContainerView) -> None:
        self.runner = runner
        self.options = options
        #: ImageStatus (and CreateContainer's lookup), ListImages: none while warm (memo.py)
        self._status_memo: ImageMemo[cri.Image] = ImageMemo(view)
        self._list_memo: ImageMemo[list[cri.Image]] = ImageMemo(view)
        # containerd's ctr, for what nerdctl refuses; counted with nerdctl's processes
        self.ctr = NerdctlRunner(
            options.ctr,
            ["--address", options.address, "--namespace", options.namespace],
            options.timeout,
        )
        self.ctr.counter = runner.counter
        #: RunPodSandbox's pull of a missing pause image, shared by concurrent calls
        self.sandbox_pull = SharedPull(self._pull_sandbox_image)

    # -- the RPCs ---------------------------------------------------------------

    def list_images(self) -> list[cri.Image]:
        # copies: the kept messages are never handed out (a router merges into them)
        kept = self._list_memo.get("", lambda _: self.list())
        return [_copy(image) for image in kept or []]

    def image_status(self, image: str) -> cri.Image | None:
        found = self.kept_status(image)
        return None if found is None else _copy(found)

    def kept_status(self, image: str) -> cri.Image | None:
        """:meth:`status`, kept until an image event (read it, never change it)."""
        return self._status_memo.get(image, self.status)

    def pull_image(self, image: str, auth: cri.AuthConfig | None) -> str:
        try:
            return self.pull(image, auth)
        finally:
            self._changed()

    def remove_image(self, image: str) -> None:
        try:
            self.remove(image)
        finally:
            self._changed()

    def _changed(self) -> None:
        """The shim pulled or removed an image: its event may still be on its way."""
        self._status_memo.clear()
        self._list_memo.clear()

    def _pin(self, image: cri.Image) -> cri.Image:
        image.pinned = is_sandbox_image(image, self.options.pause_image)
        return image

    # -- reading, one nerdctl process (or two) every call -----------------------

    def _rows(self) -> list[dict[str, Any]]:
        return self.runner.run(["images", "--format", "json", "--no-trunc"]).json_lines()

    def list(self) -> list[cri.Image]:
        """One ``nerdctl images``; sizes are nerdctl's rounded figures."""
        by_id: dict[str, cri.Image] = {}
        for row in self._rows():
            image_id = _digest_id(row.get("ID", ""))
            name = row.get("Name", "")
            image = by_id.get(image_id)
            if image is None:
                image = by_id[image_id] = cri.Image(id=image_id, size=parse_size(row["Size"]))
            if name and "@" not in name:
                image.repo_tags.extend(t for t in _normalize([name]) if t not in image.repo_tags)
            digest = _repo_digest(name, image_id)
            if name and digest not in image.repo_digests:
                image.repo_digests.append(digest)
        return [self._pin(image) for image in by_id.values()]

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        try:
            found = self.runner.json(["image", "inspect", ref])
        except NotFoundError:
            return None
        return found[0] if found else None

    def status(self, image: str) -> cri.Image | None:
        """By reference: one ``image inspect``; by id: ``images`` then ``image inspect``.

        ``repo@digest`` of an image pulled by tag is stored under its tag
        only: it is found by id (one more ``images``) when its repository
        holds that digest, as containerd's CRI finds it.
        """
        if is_image_id(image):
            return self._by_id(_digest_id(image), self._rows())
        found = self._from_inspect(image)
        ref = _parsed(image)
        if found is not None or ref is None or ref.digest is None:
            return found
        rows = self._rows()
        if not any(
            _digest_id(r["ID"]) == ref.digest and _repository(r.get("Name", "")) == ref.repository
            for r in rows
        ):
            return None
        return self._by_id(ref.digest, rows)

    def _by_id(self, wanted: str, rows: Iterable[dict[str, Any]]) -> cri.Image | None:
        names = [r["Name"] for r in rows if _digest_id(r["ID"]).startswith(wanted)]
        if not names:
            return None
        found = self._from_inspect(names[0])
        if found is not None:  # inspect names one tag; the list knows them all
            del found.repo_tags[:]
            found.repo_tags.extend(t for t in _normalize(names) if "@" not in t)
            self._pin(found)
        return found

    def _from_inspect(self, ref: str) -> cri.Image | None:
        data = self._inspect(ref)
        if data is None:
            return None
        digests = data.get("RepoDigests") or []
        image_id = digests[0].rsplit("@", 1)[1] if digests else data["Id"]
        image = cri.Image(
            id=image_id,
            repo_tags=_normalize(data.get("RepoTags") or []),
            repo_digests=[_repo_digest(d.split("@")[0], d.rsplit("@", 1)[1]) for d in digests],
            size=int(data.get("Size") or 0),
        )
        _user(image, (data.get("Config") or {}).get("User") or "")
        return self._pin(image)

    def ref_of(self, image: str) -> str:
        """The CRI id of an image in the store (NotFoundError when absent)."""
        found = self.status(image)
        if found is None:
            raise NotFoundError(f"image {image!r} not found in namespace {self.options.namespace}")
        return found.id

    # -- changing -------------------------------------------------------------

    def pull(self, image: str, auth: cri.AuthConfig | None) -> str:
        self._pull(image, auth)
        return self.ref_of(image)

    def _pull(self, image: str, auth: cri.AuthConfig | None) -> None:
        """``nerdctl pull``; without ``auth``, with nerdctl's own credentials (docker config)."""
        domain = parse_reference(image).domain
        args = ["--insecure-registry"] if self.options.is_insecure(domain) else []
        args += ["pull", "--quiet", image]
        config_dir = _docker_config(domain, auth)
        try:
            env = {"DOCKER_CONFIG": config_dir} if config_dir else None
            self.runner.run(args, timeout=self.options.pull_timeout, env=env)
        finally:
            if config_dir:
                shutil.rmtree(config_dir, ignore_errors=True)

    def _pull_sandbox_image(self) -> None:
        image, namespace = self.options.pause_image, self.options.namespace
        try:
            # the CRI sends no credentials for it: nerdctl's own config applies
            self._pull(image, None)
        except UnavailableError:
            raise  # containerd is down: not the image's fault
        except CRIError as err:
            raise FailedPreconditionError(
                f"the sandbox image {image} is not in containerd namespace {namespace} and "
                f"cannot be pulled ({err.message}); load it there (nerdctl --namespace "
                f"{namespace} load -i pause.tar), let nerdctl reach its registry (nerdctl login "
                "for credentials, --shim-option insecure_registries=HOST for plain HTTP), or "
                "choose another with --shim-option pause_image=REF"
            ) from err

    def remove(self, image: str) -> None:
        """Remove the image with every name it has: one ``images`` and one ``rmi``."""
        rows = self._rows()
        if is_image_id(image):
            wanted = _digest_id(image)
            target = {_digest_id(r["ID"]) for r in rows if _digest_id(r["ID"]).startswith(wanted)}
        else:
            target = {_digest_id(r["ID"]) for r in rows if r.get("Name") in (image, *_alias(image))}
        if len(target) != 1:
            if not target:
                raise NotFoundError(f"image {image!r} not found")
            raise InvalidArgumentError(f"image id prefix {image!r} matches several images")
        names = sorted({r["Name"] for r in rows if _digest_id(r["ID"]) in target})
        # -f: like containerd's CRI, remove it even when a container was made from it
        # (the container keeps its snapshot). -f also turns some of nerdctl's failures
        # into exit 0 with an error line, so those lines decide.
        result = self.runner.run(["rmi", "-f", *names], check=False)
        messages = fatal_messages(result.stderr)
        if any(_IN_USE in message for message in messages):
            self._remove_in_use(names)
        elif messages or result.returncode != 0:
            raise error_for(result.argv, result.returncode or 1, result.stderr)

    def _remove_in_use(self, names: Sequence[str]) -> None:
        """Remove names nerdctl will not while a container runs (containerd's CRI does)."""
        if shutil.which(self.options.ctr) is None:
            raise FailedPreconditionError(
                f"image {names[0]} is used by a running container: nerdctl cannot remove it, "
                f"and containerd's ctr, which can, is not at {self.options.ctr!r}; install "
                "containerd's ctr or point the shim at it with --shim-option ctr=PATH"
            )
        # the running container keeps its snapshot; a name gone meanwhile is only a warning
        self.ctr.run(["images", "rm", *names])

    def fs_info(self) -> cri.ImageFsInfoResponse:
        """The snapshotter's directory, and the unpacked size of every image."""
        snapshotter = self.options.snapshotter or "overlayfs"
        mountpoint = f"{self.options.containerd_root}/io.containerd.snapshotter.v1.{snapshotter}"
        used = sum(image.size for image in self.list())
        usage = cri.FilesystemUsage(
            timestamp=time.time_ns(),
            fs_id=cri.FilesystemIdentifier(mountpoint=mountpoint),
        )
        usage.used_bytes.value = used
        return cri.ImageFsInfoResponse(image_filesystems=[usage])


def _copy(image: cri.Image) -> cri.Image:
    copied = cri.Image()
    copied.CopyFrom(image)
    return copied


def _parsed(image: str) -> ImageReference | None:
    try:
        return parse_reference(image)
    except InvalidArgumentError:
        return None


def _repository(name: str) -> str:
    ref = _parsed(name)
    return ref.repository if ref is not None else ""


def _alias(image: str) -> tuple[str, ...]:
    """Other spellings nerdctl may have stored ``image`` under."""
    try:
        ref = parse_reference(image)
    except InvalidArgumentError:
        return ()
    return (str(ref),)


def _docker_config(domain: str, auth: cri.AuthConfig | None) -> str | None:
    """A throwaway DOCKER_CONFIG holding the pull's credentials (None without any)."""
    if auth is None or not (
        auth.username or auth.auth or auth.identity_token or auth.registry_token
    ):
        return None
    entry: dict[str, str] = {}
    if auth.auth:
        entry["auth"] = auth.auth
    elif auth.username:
        entry["auth"] = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
    if auth.identity_token:
        entry["identitytoken"] = auth.identity_token
    if auth.registry_token:
        entry["registrytoken"] = auth.registry_token
    server = auth.server_address or domain
    servers = {server}
    if domain == "docker.io":
        servers.add("https://index.docker.io/v1/")
    directory = tempfile.mkdtemp(prefix="pycri-nerdctl-auth-")
    with open(f"{directory}/config.json", "w", encoding="utf-8") as f:
        json.dump({"auths": dict.fromkeys(servers, entry)}, f)
    return directory
