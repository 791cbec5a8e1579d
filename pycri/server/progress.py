"""``pycri.v1.PullProgress/Watch``: image pull progress, which the CRI has no way to report.

A server stream of JSON objects ``{"image", "status", "current_bytes",
"total_bytes"}``, one per step of every pull in flight (or of one image,
when the request is ``{"image": "busybox"}``). It lives beside the CRI
services, not in them: CRI clients never see it, pycri clients use it for
progress bars, and other runtimes answer UNIMPLEMENTED.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import grpc

from pycri.core.images import normalize_reference
from pycri.core.runtime import CRIRuntime
from pycri.errors import InvalidArgumentError

__all__ = ["METHOD", "SERVICE", "build_progress_handler"]

SERVICE = "pycri.v1.PullProgress"
METHOD = "Watch"


def _wanted(request: bytes) -> str:
    try:
        image = str(json.loads(request or b"{}").get("image", ""))
    except (ValueError, AttributeError):
        raise InvalidArgumentError(
            'the request must be a JSON object like {"image": "..."}'
        ) from None
    return normalize_reference(image) if image else ""


def build_progress_handler(runtime: CRIRuntime) -> grpc.GenericRpcHandler:
    def watch(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            wanted = _wanted(request)
        except InvalidArgumentError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, err.message)
        subscription = runtime.pulls.subscribe()
        try:
            for step in subscription.events():
                if not context.is_active():
                    return
                if step is None or (wanted and step.image != wanted):
                    continue
                yield json.dumps(dataclasses.asdict(step)).encode()
        finally:
            subscription.close()

    handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_stream_rpc_method_handler(watch)
    return grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler})
