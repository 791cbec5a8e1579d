"""gRPC handlers for RuntimeService and ImageService, built from the proto's descriptors.

The servicer holds no runtime knowledge: it looks up the CRIRuntime method
for each RPC, and turns pycri exceptions into status codes. RPCs that
CRIRuntime does not serve answer UNIMPLEMENTED. Where CRIRuntime answers an
RPC with the response already serialised (the hot list RPCs and Version),
those bytes are sent as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from pycri.api import api_pb2 as cri
from pycri.core.runtime import CRIRuntime
from pycri.errors import CRIError

__all__ = ["build_handlers"]

log = logging.getLogger(__name__)

Behavior = Callable[[Any, grpc.ServicerContext], Any]

#: status messages travel in a header, and clients refuse headers over 16 KiB
MAX_DETAILS = 2048


def _message_class(name: str) -> type[Message]:
    cls: type[Message] = getattr(cri, name)
    return cls


def _details(message: str) -> str:
    if len(message) <= MAX_DETAILS:
        return message
    return f"{message[:MAX_DETAILS]}... ({len(message) - MAX_DETAILS} more characters)"


def _abort(context: grpc.ServicerContext, rpc: str, exc: BaseException) -> None:
    if isinstance(exc, CRIError):
        log.debug("%s failed: %s", rpc, exc)
        context.abort(exc.code, _details(exc.message))
    log.exception("%s failed with an unexpected error", rpc)
    context.abort(
        grpc.StatusCode.INTERNAL, _details(f"{rpc}: internal error: {type(exc).__name__}: {exc}")
    )


def _unary(rpc: str, method: Callable[[Any], Any]) -> Behavior:
    def behavior(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(request)
        except Exception as exc:
            _abort(context, rpc, exc)
            raise  # unreachable: abort raises

    return behavior


def _streaming(rpc: str, method: Callable[[Any, Callable[[], bool]], Iterator[Any]]) -> Behavior:
    def behavior(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(request, context.is_active)
        except Exception as exc:
            _abort(context, rpc, exc)

    return behavior


def _unimplemented(full_name: str) -> Behavior:
    def behavior(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"pycri does not implement {full_name}")

    return behavior


def _handler(runtime: CRIRuntime, method: MethodDescriptor) -> grpc.RpcMethodHandler[Any, Any]:
    request_cls = _message_class(method.input_type.name)
    response_cls = _message_class(method.output_type.name)
    encoded = CRIRuntime.encoded_rpc_handlers().get(method.name)
    if encoded is not None and not method.server_streaming:
        return grpc.unary_unary_rpc_method_handler(
            _unary(method.name, getattr(runtime, encoded)),
            request_deserializer=request_cls.FromString,
            response_serializer=None,  # bytes already
        )
    attr = CRIRuntime.rpc_handlers().get(method.name)
    full_name = f"{method.containing_service.full_name}/{method.name}"
    behavior = (
        _unimplemented(full_name)
        if attr is None
        else (_streaming if method.server_streaming else _unary)(
            method.name, getattr(runtime, attr)
        )
    )
    make = (
        grpc.unary_stream_rpc_method_handler
        if method.server_streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return make(
        behavior,
        request_deserializer=request_cls.FromString,
        response_serializer=response_cls.SerializeToString,
    )


def build_handlers(runtime: CRIRuntime) -> list[grpc.GenericRpcHandler]:
    """One generic handler per CRI service, for ``grpc.Server.add_generic_rpc_handlers``."""
    handlers = []
    for service in cri.DESCRIPTOR.services_by_name.values():
        methods = {m.name: _handler(runtime, m) for m in service.methods}
        handlers.append(grpc.method_handlers_generic_handler(service.full_name, methods))
    return handlers
