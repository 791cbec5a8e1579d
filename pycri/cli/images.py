"""Images: ``images``, ``pull``, ``inspecti``, ``rmi``, ``imagefsinfo``."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click

from pycri.api import api_pb2 as cri
from pycri.cli.common import go_map, output_option, pass_session, run_each, template_option
from pycri.cli.errors import CLIError
from pycri.cli.gosort import go_sort
from pycri.cli.imagelist import apply_filters, ref_less, repo_digest, repo_tags
from pycri.cli.output import (
    echo,
    emit_message,
    emit_status,
    proto_dict,
    render_table,
    status_document,
)
from pycri.cli.pods import load_pod_config
from pycri.cli.session import CrictlSession
from pycri.cli.units import human_size, parse_duration, parse_labels, truncate_id
from pycri.errors import CRIError

__all__ = ["COMMANDS", "get_auth", "image_status", "pull_image"]

_FILTER_HELP = (
    "Filter output (repeatable): dangling=true|false, reference=/regex/, "
    "before=<image>|<id>|<image@digest>, since=<image>|<id>|<image@digest>."
)


def get_auth(creds: str, auth: str, username: str) -> cri.AuthConfig | None:
    """crictl's --creds USER[:PASS] / --auth BASE64 / --username (password prompted)."""
    if username:
        password = click.prompt("Enter Password", hide_input=True, err=True)
        return cri.AuthConfig(username=username, password=password)
    if creds and auth:
        raise click.UsageError("both --creds and --auth are specified")
    if creds:
        user, _, password = creds.partition(":")
        if not user:
            raise click.BadParameter("username can't be empty", param_hint="--creds")
        return cri.AuthConfig(username=user, password=password)
    if auth:
        return cri.AuthConfig(auth=auth)
    return None


@contextmanager
def _progress(image: str) -> Iterator[None]:
    """An elapsed-time spinner on a terminal (the CRI pull reports no byte counts)."""
    if not sys.stderr.isatty():
        yield
        return
    done = threading.Event()

    def spin() -> None:
        frames, start, index = "|/-\\", time.monotonic(), 0
        while not done.wait(0.1):
            elapsed = time.monotonic() - start
            sys.stderr.write(f"\r{frames[index % 4]} Pulling {image} ({elapsed:.0f}s)")
            sys.stderr.flush()
            index += 1
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def pull_image(
    session: CrictlSession,
    image: str,
    *,
    auth: cri.AuthConfig | None = None,
    sandbox: cri.PodSandboxConfig | None = None,
    annotations: dict[str, str] | None = None,
    timeout: float = 0.0,
) -> str:
    """PullImage with a spinner on a terminal; the image ref."""
    request = cri.PullImageRequest(
        image=cri.ImageSpec(image=image, annotations=annotations or {}),
        auth=auth,
        sandbox_config=sandbox,
    )
    client = session.client
    with _progress(image):
        resp = session.rpc(client.pull_image, request, timeout=timeout if timeout > 0 else None)
    return resp.image_ref


def image_status(
    session: CrictlSession, image: str, verbose: bool = False
) -> cri.ImageStatusResponse:
    client = session.client
    request = cri.ImageStatusRequest(image=cri.ImageSpec(image=image), verbose=verbose)
    return session.rpc(client.image_status, request)


def list_images(
    session: CrictlSession, name: str = "", filters: tuple[str, ...] = ()
) -> list[cri.Image]:
    """ListImages sorted like crictl, with its --filter conditions."""
    client = session.client
    request = cri.ListImagesRequest(filter=cri.ImageFilter(image=cri.ImageSpec(image=name)))
    images = list(session.rpc(client.list_images, request).images)
    # crictl's Less is no strict weak order: only Go's own algorithm gives its order
    go_sort(images, lambda a, b: ref_less(a, b) < 0)
    return apply_filters(images, filters)


@click.command("images")
@click.argument("name", required=False, default="", metavar="[REPOSITORY[:TAG]]")
@click.option("-v", "--verbose", is_flag=True, help="Show verbose info for images.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("-f", "--filter", "filters", multiple=True, help=_FILTER_HELP)
@output_option(["json", "yaml", "table"], default="table")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Show output without truncating the ID.")
@click.option("--pinned", is_flag=True, help="Show whether the image is pinned.")
@pass_session
def images_command(
    session: CrictlSession,
    name: str,
    verbose: bool,
    quiet: bool,
    filters: tuple[str, ...],
    output: str,
    digests: bool,
    no_trunc: bool,
    pinned: bool,
) -> None:
    """List images (aliases: image, img)."""
    images = list_images(session, name, filters)
    if output != "table":
        emit_message(cri.ListImagesResponse(images=images), output)
        return
    if quiet:
        for image in images:
            echo(image.id)
        return
    if verbose:
        for image in images:
            _echo_verbose(image)
        return
    header = ["IMAGE", "TAG", *(["DIGEST"] if digests else []), "IMAGE ID", "SIZE"]
    rows = [header + (["PINNED"] if pinned else [])]
    for image in images:
        repo, digest = repo_digest(image)
        image_id = image.id if no_trunc else truncate_id(image.id, "sha256:")
        digest = digest if no_trunc else truncate_id(digest, "sha256:")
        for repo_name, tag in repo_tags(image, repo):
            row = [repo_name, tag, *([digest] if digests else []), image_id]
            row.append(human_size(image.size, 3))
            rows.append(row + (["true" if image.pinned else "false"] if pinned else []))
    echo(render_table(rows))


def _echo_verbose(image: cri.Image) -> None:
    echo(f"ID: {image.id}")
    for tag in image.repo_tags:
        echo(f"RepoTags: {tag}")
    for digest in image.repo_digests:
        echo(f"RepoDigests: {digest}")
    if image.size:
        echo(f"Size: {image.size}")
    if image.HasField("uid"):
        echo(f"Uid: value:{image.uid.value}")
    if image.username:
        echo(f"Username: {image.username}")
    if image.pinned:
        echo("Pinned: true")
    echo()


@click.command("pull")
@click.argument("image", metavar="NAME[:TAG|@DIGEST]")
@click.option("--creds", envvar="CRICTL_CREDS", default="", metavar="USERNAME[:PASSWORD]")
@click.option("--auth", envvar="CRICTL_AUTH", default="", metavar="AUTH_STRING",
              help="Base64 of USERNAME[:PASSWORD].")  # fmt: skip
@click.option("-u", "--username", default="", help="Prompt for the password of USERNAME.")
@click.option("--pod-config", default="", metavar="pod-config.[json|yaml]",
              help="Pull on behalf of this pod sandbox config.")  # fmt: skip
@click.option("-a", "--annotation", "annotations", multiple=True, metavar="KEY=VALUE")
@click.option("--pull-timeout", "--pt", envvar="CRICTL_PULL_TIMEOUT", default="0s",
              help="Maximum time for the pull (0s: none).")  # fmt: skip
@pass_session
def pull_command(
    session: CrictlSession,
    image: str,
    creds: str,
    auth: str,
    username: str,
    pod_config: str,
    annotations: tuple[str, ...],
    pull_timeout: str,
) -> None:
    """Pull an image from a registry."""
    sandbox = load_pod_config(pod_config) if pod_config else None
    try:
        labels = parse_labels(annotations)
        timeout = parse_duration(pull_timeout)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    ref = pull_image(
        session,
        image,
        auth=get_auth(creds, auth, username),
        sandbox=sandbox,
        annotations=labels,
        timeout=timeout,
    )
    echo(f"Image is up to date for {ref}")


@click.command("inspecti")
@click.argument("ids", nargs=-1, metavar="IMAGE-ID [IMAGE-ID...]")
@output_option(["json", "yaml", "go-template", "table"], default="json")
@click.option("-q", "--quiet", is_flag=True, help="Do not show verbose information.")
@template_option
@click.option("--name", default="", help="Filter by image name (without ids).")
@click.option("-f", "--filter", "filters", multiple=True, help=_FILTER_HELP)
@pass_session
def inspecti_command(
    session: CrictlSession,
    ids: tuple[str, ...],
    output: str,
    quiet: bool,
    template: str,
    name: str,
    filters: tuple[str, ...],
) -> None:
    """Return the status of one or more images."""
    targets = list(ids) or [image.id for image in list_images(session, name, filters)]
    if not targets:
        raise CLIError("no image ids given and no image matches the filters")
    docs = []
    for target in targets:
        resp = image_status(session, target, verbose=not quiet)
        if not resp.HasField("image"):
            raise CLIError(f"no such image {target!r} present")
        if output == "table":
            _echo_status_table(resp, not quiet)
        else:
            docs.append(status_document(proto_dict(resp.image), resp.info))
    emit_status(docs, output, template)


def _echo_status_table(resp: cri.ImageStatusResponse, verbose: bool) -> None:
    echo(f"ID: {resp.image.id}")
    for tag in resp.image.repo_tags:
        echo(f"Tag: {tag}")
    for digest in resp.image.repo_digests:
        echo(f"Digest: {digest}")
    echo(f"Size: {human_size(resp.image.size, 3)}")
    if verbose:
        echo(f"Info: {go_map(resp.info)}")


@click.command("rmi")
@click.argument("ids", nargs=-1, metavar="IMAGE-ID [IMAGE-ID...]")
@click.option("-a", "--all", "all_images", is_flag=True, help="Remove all images.")
@click.option("-q", "--prune", is_flag=True, help="Remove all unused images.")
@pass_session
def rmi_command(
    session: CrictlSession, ids: tuple[str, ...], all_images: bool, prune: bool
) -> None:
    """Remove one or more images."""
    wanted = dict.fromkeys(ids, True)
    client = session.client
    if all_images or prune:
        for image in session.rpc(client.list_images, cri.ListImagesRequest()).images:
            if not (prune and image.pinned):
                wanted[image.id] = True
    if prune:
        for ctr in session.rpc(client.list_containers, cri.ListContainersRequest()).containers:
            status = image_status(session, ctr.image.image)
            if status.HasField("image"):
                wanted[status.image.id] = False
    targets = [image for image, remove in wanted.items() if remove]
    if not targets:
        if all_images or prune:
            echo("No images to remove", err=True)
            return
        raise click.UsageError("give IMAGE-IDs, --all or --prune")

    def remove(image: str) -> None:
        status = image_status(session, image)
        if not status.HasField("image"):
            raise CLIError(f"no such image {image}")
        request = cri.RemoveImageRequest(image=cri.ImageSpec(image=image))
        try:
            session.rpc(client.remove_image, request)
        except CRIError:
            if prune:
                return  # another client may have raced us
            raise
        for name in status.image.repo_tags or status.image.repo_digests:
            echo(f"Deleted: {name}")

    run_each(targets, remove)


@click.command("imagefsinfo")
@output_option(["json", "yaml", "go-template", "table"], default="json")
@template_option
@pass_session
def imagefsinfo_command(session: CrictlSession, output: str, template: str) -> None:
    """Return image filesystem info."""
    client = session.client
    resp = session.rpc(client.image_fs_info, cri.ImageFsInfoRequest())
    if output != "table":
        emit_status([status_document(proto_dict(resp), {})], output, template)
        return
    for label, usages in (
        ("Container", resp.container_filesystems),
        ("Image", resp.image_filesystems),
    ):
        echo(f"{label} Filesystem ")
        for i, usage in enumerate(usages):
            echo(f"TimeStamp[{i}]: {usage.timestamp}")
            echo(f"Disk[{i}]: {human_size(usage.used_bytes.value)}")
            echo(f"Inodes[{i}]: {usage.inodes_used.value}")
            echo(f"Mountpoint[{i}]: {usage.fs_id.mountpoint}")


COMMANDS = [images_command, pull_command, inspecti_command, rmi_command, imagefsinfo_command]
