"""crictl's image listing rules: sort order, repo/tag/digest columns, ``--filter``."""

from __future__ import annotations

import re

import click

from pycri.api import api_pb2 as cri

__all__ = ["apply_filters", "ref_less", "repo_digest", "repo_tags"]

NONE = "<none>"


def ref_less(a: cri.Image, b: cri.Image) -> int:
    if a.repo_tags and b.repo_tags:
        x, y = a.repo_tags[0], b.repo_tags[0]
    elif a.repo_digests and b.repo_digests:
        x, y = a.repo_digests[0], b.repo_digests[0]
    else:
        x, y = a.id, b.id
    return (x > y) - (x < y)


def repo_digest(image: cri.Image) -> tuple[str, str]:
    if not image.repo_digests:
        return NONE, NONE
    parts = image.repo_digests[0].split("@")
    return (parts[0], parts[1]) if len(parts) == 2 else ("errorName", "errorRepoDigest")


def repo_tags(image: cri.Image, name: str) -> list[tuple[str, str]]:
    if not image.repo_tags:
        return [(name, NONE)]
    pairs = []
    for tag in image.repo_tags:
        repo, sep, version = tag.rpartition(":")
        if not sep:
            pairs.append(("errorRepoTag", "errorRepoTag"))
            continue
        pairs.append((name if repo == NONE else repo, version))
    return pairs


def before_since(value: str, images: list[cri.Image]) -> list[cri.Image]:
    kept = []
    for image in images:
        if "@" in value:
            if image.repo_digests and image.repo_digests[0].startswith(value):
                break
            if image.repo_digests:
                kept.append(image)
            continue
        if ":" in value:
            repo, tag = repo_tags(image, repo_digest(image)[0])[0]
            hit = f"{repo}:{tag}" == value
        else:
            hit = image.id.startswith(value)
        if hit:
            break
        kept.append(image)
    return kept


def apply_filters(images: list[cri.Image], filters: tuple[str, ...]) -> list[cri.Image]:
    for item in filters:
        key, _, value = item.partition("=")
        if key == "before":
            images = list(reversed(before_since(value, list(reversed(images)))))
        elif key == "since":
            images = before_since(value, images)
        elif key == "dangling":
            images = [i for i in images if (value == "true") == (not i.repo_tags)]
        elif key == "reference":
            try:
                pattern = re.compile(value)
            except re.error as err:
                raise click.BadParameter(
                    f"invalid regex {value!r}: {err}", param_hint="--filter"
                ) from None
            images = [
                i for i in images if pattern.search(repo_digest(i)[0]) or repo_digest(i)[0] == value
            ]
        else:
            raise click.BadParameter(f"unknown filter flag: {item}", param_hint="--filter")
    return images
