"""One exception family for every layer.

Shims raise these, the server turns them into gRPC status codes, and the
client turns status codes back into the same classes, so code written
against an in-process runtime and code written against a remote endpoint
catch the same exceptions.
"""

from __future__ import annotations

import grpc

__all__ = [
    "AlreadyExistsError",
    "CRIError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnavailableError",
    "UnimplementedError",
    "error_for_code",
]


class CRIError(Exception):
    """A CRI call failed; ``code`` is the gRPC status the server answers with."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, rpc: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rpc = rpc

    def __str__(self) -> str:
        where = f"{self.rpc}: " if self.rpc else ""
        return f"{where}{self.message} ({self.code.name})"


class NotFoundError(CRIError):
    code = grpc.StatusCode.NOT_FOUND


class InvalidArgumentError(CRIError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExistsError(CRIError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(CRIError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(CRIError):
    code = grpc.StatusCode.UNAVAILABLE


class UnimplementedError(CRIError):
    code = grpc.StatusCode.UNIMPLEMENTED


class DeadlineExceededError(CRIError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhaustedError(CRIError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PermissionDeniedError(CRIError):
    code = grpc.StatusCode.PERMISSION_DENIED


class InternalError(CRIError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[CRIError]] = {
    cls.code: cls
    for cls in (
        NotFoundError,
        InvalidArgumentError,
        AlreadyExistsError,
        FailedPreconditionError,
        UnavailableError,
        UnimplementedError,
        DeadlineExceededError,
        ResourceExhaustedError,
        PermissionDeniedError,
        InternalError,
    )
}


def error_for_code(code: grpc.StatusCode, message: str, *, rpc: str | None = None) -> CRIError:
    """Build the exception that stands for ``code`` (CRIError itself for the rest)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        err = CRIError(message, rpc=rpc)
        err.code = code
        return err
    return cls(message, rpc=rpc)
