"""Fuzz the CRI gRPC surface with random, malformed, oversized and boundary messages.

Requests are generated from the protobuf descriptors, so every RPC and every
field is covered without a hand-written list. No request may raise an
exception pycri did not expect (a crash: INTERNAL "internal error: ..."),
the server must stay up, and whatever the fuzzer manages to create is
removed afterwards so a leak check can count what is left. INTERNAL or
UNKNOWN reported by an engine (a registry it cannot reach) is counted apart.

    report = fuzz_endpoint("unix:///tmp/cri.sock", iterations=50, seed=1)
"""

from __future__ import annotations

import random
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from pycri.api import api_pb2 as cri
from pycri.client import CRIClient
from pycri.core.filters import image_matches
from pycri.core.images import normalize_reference
from pycri.endpoint import parse_endpoint
from pycri.errors import CRIError

__all__ = ["FuzzReport", "MessageFuzzer", "cleanup", "fuzz_endpoint"]

#: strings that reach interesting code: ids, names, paths, references, injection attempts
_STRINGS = (
    "", "a", "busybox", "docker.io/library/busybox:latest", "UPPER:tag", "a b", "-rf",
    "../../etc/passwd", "/etc/shadow", "x\x00y", "名前", "k8s_POD_a_b_c_0", "$(reboot)",
    "`id`", "; rm -rf /", "0" * 64, "f" * 64, "sha256:" + "a" * 64, "tcp://0.0.0.0:1",
    "\n", "%s%n", "a" * 300,
)  # fmt: skip
_INTS = (0, 1, -1, 2, 3, 255, 65535, 65536, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63))
_UINTS = (0, 1, 2, 65535, 2**32 - 1, 2**64 - 1)
#: a field or message descriptor; protobuf's stubs and its upb runtime types disagree
Field = Any
Descriptor = Any
#: how pycri's servicer words an exception it did not expect (see pycri.server.servicer)
_UNEXPECTED = ": internal error: "
_SKIP_RPCS = frozenset({"GetContainerEvents"})  # a stream that only ends when cancelled


class MessageFuzzer:
    """Random messages of any CRI type, biased towards boundary values."""

    def __init__(self, rng: random.Random, max_depth: int = 4, huge: int = 70_000) -> None:
        self.rng = rng
        self.max_depth = max_depth
        self.huge = huge

    def message(self, descriptor: Descriptor, depth: int = 0) -> Message:
        msg: Message = getattr(cri, descriptor.name)() if depth == 0 else _new(descriptor)
        self.fill(msg, depth)
        return msg

    def fill(self, msg: Message, depth: int) -> None:
        for f in msg.DESCRIPTOR.fields:
            if self.rng.random() < 0.35:
                continue  # leave unset: missing fields are the commonest bad input
            if _is_map(f):
                self._fill_map(msg, f, depth)
            elif f.is_repeated:
                for _ in range(self.rng.randint(0, 3)):
                    self._append(msg, f, depth)
            elif f.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < self.max_depth:
                    self.fill(getattr(msg, f.name), depth + 1)
                    getattr(msg, f.name).SetInParent()
            else:
                setattr(msg, f.name, self.scalar(f))

    def _append(self, msg: Message, f: Field, depth: int) -> None:
        container = getattr(msg, f.name)
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth < self.max_depth:
                self.fill(container.add(), depth + 1)
        else:
            container.append(self.scalar(f))

    def _fill_map(self, msg: Message, f: Field, depth: int) -> None:
        key_field, value_field = (
            f.message_type.fields_by_name["key"],
            f.message_type.fields_by_name["value"],
        )
        target = getattr(msg, f.name)
        for _ in range(self.rng.randint(0, 3)):
            key = self.scalar(key_field)
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < self.max_depth:
                    self.fill(target[key], depth + 1)
            else:
                target[key] = self.scalar(value_field)

    def scalar(self, f: Field) -> object:
        rng, kind = self.rng, f.type
        if kind == FieldDescriptor.TYPE_STRING:
            roll = rng.random()
            if roll < 0.03:
                return "x" * self.huge
            if roll < 0.2:
                return "".join(rng.choices(string.printable, k=rng.randint(1, 40)))
            return rng.choice(_STRINGS)
        if kind == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(rng.choice((0, 1, 16, 1024)))
        if kind == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if kind == FieldDescriptor.TYPE_ENUM:
            values = [v.number for v in f.enum_type.values]
            return rng.choice([*values, 99, -5])  # proto3 enums are open
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return rng.choice((0.0, -1.0, 1e300, float("inf"), float("nan")))
        if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            return rng.choice([u for u in _UINTS if u < 2**32])
        if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return rng.choice(_UINTS)
        if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32,
                    FieldDescriptor.TYPE_SFIXED32):  # fmt: skip
            return rng.choice([i for i in _INTS if -(2**31) <= i < 2**31])
        return rng.choice(_INTS)


def _new(descriptor: Descriptor) -> Message:
    cls: type[Message] = getattr(cri, descriptor.name)
    return cls()


def _is_map(f: Field) -> bool:
    return bool(
        f.type == FieldDescriptor.TYPE_MESSAGE
        and f.message_type.GetOptions().map_entry
        and f.is_repeated
    )


@dataclass
class FuzzReport:
    sent: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    #: an unexpected exception in pycri (the servicer's "internal error:"), by RPC and request
    crashes: list[str] = field(default_factory=list)
    #: INTERNAL/UNKNOWN that an engine reported, e.g. a registry it could not reach
    engine_errors: list[str] = field(default_factory=list)
    #: garbage (non-protobuf) payloads sent, and what they got
    garbage_codes: Counter[str] = field(default_factory=Counter)
    alive: bool = True

    def summary(self) -> str:
        codes = ", ".join(f"{code} {n}" for code, n in self.codes.most_common())
        garbage = ", ".join(f"{c} {n}" for c, n in self.garbage_codes.most_common())
        return (
            f"{self.sent} requests; status codes: {codes}; garbage payloads: {garbage}; "
            f"engine errors: {len(self.engine_errors)}; crashes: {len(self.crashes)}; "
            f"server alive: {self.alive}"
        )


def fuzz_endpoint(
    endpoint: str,
    *,
    iterations: int = 50,
    seed: int = 0,
    timeout: float = 10.0,
    progress: Callable[[str], None] | None = None,
) -> FuzzReport:
    """Send ``iterations`` random requests to every unary CRI RPC, plus garbage bytes."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test input, not secrets
    fuzzer = MessageFuzzer(rng)
    report = FuzzReport()
    with CRIClient(endpoint, timeout=timeout) as client:
        protected = list(client.list_images().images)
    with grpc.insecure_channel(parse_endpoint(endpoint).grpc_target) as channel:
        for service in cri.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.name in _SKIP_RPCS:
                    continue
                path = f"/{service.full_name}/{method.name}"
                raw: (
                    grpc.UnaryUnaryMultiCallable[bytes, bytes]
                    | grpc.UnaryStreamMultiCallable[bytes, bytes]
                ) = (
                    channel.unary_stream(path)
                    if method.server_streaming
                    else channel.unary_unary(path)
                )
                if progress:
                    progress(method.name)
                for _ in range(iterations):
                    request = fuzzer.message(method.input_type)
                    if method.name == "RemoveImage":
                        _spare(request, protected)
                    code, details = _send(raw, request.SerializeToString(), timeout)
                    report.sent += 1
                    report.codes[code.name] += 1
                    if code == grpc.StatusCode.INTERNAL and _UNEXPECTED in details:
                        report.crashes.append(f"{method.name}: {details} <- {request!s:.300}")
                    elif code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                        report.engine_errors.append(f"{method.name}: {details[:300]}")
                garbage, _ = _send(raw, rng.randbytes(64), timeout)
                report.garbage_codes[garbage.name] += 1
    with CRIClient(endpoint, timeout=timeout) as client:
        try:
            client.version()
        except Exception:
            report.alive = False
    return report


def _spare(request: Message, images: list[cri.Image]) -> None:
    """Point a RemoveImage at nothing when it names an image that was there before.

    The fuzzer's strings include ``busybox``; removing the images the other
    tests run on would break them, and a registry to pull them back from may
    not be reachable.
    """
    assert isinstance(request, cri.RemoveImageRequest)
    try:
        ref = normalize_reference(request.image.image)
    except CRIError:
        return
    if any(image_matches(image, ref) for image in images):
        request.image.image = "docker.io/library/pycri-fuzz-absent:latest"


def _send(
    raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] | grpc.UnaryStreamMultiCallable[bytes, bytes],
    payload: bytes,
    timeout: float,
) -> tuple[grpc.StatusCode, str]:
    try:
        result = raw(payload, timeout=timeout)
        if not isinstance(result, bytes):
            for _ in result:  # drain a stream
                pass
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def cleanup(client: CRIClient, keep_images: set[str]) -> None:
    """Remove every pod (and so every container) and every image not in ``keep_images``."""
    for pod in client.list_pod_sandbox().items:
        client.remove_pod_sandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    for container in client.list_containers().containers:
        client.remove_container(cri.RemoveContainerRequest(container_id=container.id))
    for image in client.list_images().images:
        if image.id not in keep_images:
            client.remove_image(cri.RemoveImageRequest(image=cri.ImageSpec(image=image.id)))
