"""The one exception set of the project, and its mapping to gRPC status codes and HTTP codes.

Servers raise these; the gRPC interceptor and the HTTP adapter translate them with the
attributes below and nothing else, and the SDK turns a failed call back into the same class.
"""

from __future__ import annotations

from http import HTTPStatus

import grpc

from safetypairs.v1 import common_pb2

# Trailing-metadata key carrying the error class name, so that a client can tell apart
# errors that share a status code (payload too large vs overloaded are both RESOURCE_EXHAUSTED).
ERROR_KIND_METADATA_KEY = "safetypairs-error-kind"
# Longest message an error carries: a message built from request data could otherwise grow
# past what a gRPC status (trailing metadata) carries, and the client lost the error's kind.
MAX_MESSAGE_CHARS = 2000


class SafetyPairsError(Exception):
    """Base class. `grpc_code` and `http_status` are the whole mapping table."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    http_status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    # Set by the SDK on a failed call: the id the service logged it under.
    request_id: str | None = None

    def __init__(self, message: str) -> None:
        # A lone surrogate (from a request's text) cannot be sent as UTF-8: escape it.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(message) > MAX_MESSAGE_CHARS:
            cut = len(message) - MAX_MESSAGE_CHARS
            message = f"{message[:MAX_MESSAGE_CHARS]}... ({cut} more characters)"
        super().__init__(message)
        self.message = message

    @property
    def kind(self) -> str:
        return type(self).__name__


class InvalidInput(SafetyPairsError):
    """The request is malformed: not an image, corrupt, unknown category, bad option."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = HTTPStatus.BAD_REQUEST


class PayloadTooLarge(SafetyPairsError):
    """An image or a request is over a size limit (bytes, pixels or item count)."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class Overloaded(SafetyPairsError):
    """The bounded queue is full: refused at once rather than buffered without bound."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = HTTPStatus.TOO_MANY_REQUESTS


class Unavailable(SafetyPairsError):
    """The service is not ready or is shutting down; safe to retry elsewhere."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = HTTPStatus.SERVICE_UNAVAILABLE


class NotFound(SafetyPairsError):
    """The request names a model (or other thing) this server does not have."""

    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = HTTPStatus.NOT_FOUND


class DeadlineExceeded(SafetyPairsError):
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = HTTPStatus.GATEWAY_TIMEOUT


class Unauthenticated(SafetyPairsError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = HTTPStatus.UNAUTHORIZED


class ModelError(SafetyPairsError):
    """A model artifact is missing, invalid or failed to run (a server-side problem)."""


class StorageError(SafetyPairsError):
    """A file could not be read or written (permissions, I/O error); the message names it."""


class DiskFull(StorageError):
    """No space left (or a file-size or quota limit) while writing the file the message names."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = HTTPStatus.INSUFFICIENT_STORAGE


class FolderInUse(SafetyPairsError):
    """Another process holds the folder's writer lock; the message names it and its pid."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = HTTPStatus.CONFLICT


class TamperedFile(InvalidInput):
    """A dataset file is not what its place says: a symbolic link, not a regular file, or
    content that does not match its content-addressed name."""


_BY_KIND: dict[str, type[SafetyPairsError]] = {
    cls.__name__: cls
    for cls in (
        SafetyPairsError,
        InvalidInput,
        PayloadTooLarge,
        Overloaded,
        Unavailable,
        NotFound,
        DeadlineExceeded,
        Unauthenticated,
        ModelError,
        StorageError,
        DiskFull,
        FolderInUse,
        TamperedFile,
    )
}
# For answers without the kind metadata (other servers, gRPC's own errors).
_BY_CODE: dict[grpc.StatusCode, type[SafetyPairsError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.RESOURCE_EXHAUSTED: PayloadTooLarge,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    # A client that cancels its own call never reads a status (the SDK's call raises
    # CancelledError), so a CANCELLED it receives was sent by a server dropping calls that
    # arrived as it began to stop: retry elsewhere, as for UNAVAILABLE.
    grpc.StatusCode.CANCELLED: Unavailable,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def error_class(kind: str | None, code: grpc.StatusCode | None) -> type[SafetyPairsError]:
    """The exception class for an error's kind name, else for its gRPC code."""
    if kind and kind in _BY_KIND:
        return _BY_KIND[kind]
    return _BY_CODE.get(code, SafetyPairsError) if code is not None else SafetyPairsError


def grpc_code_value(code: grpc.StatusCode) -> int:
    """The numeric google.rpc.Code of a grpc.StatusCode (used in per-item errors)."""
    return code.value[0]


def status_code_from_value(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


def item_error(err: SafetyPairsError, index: int, item_id: str) -> common_pb2.ItemError:
    """The per-item error of a batch answer: code, kind and a message naming the item."""
    return common_pb2.ItemError(
        code=grpc_code_value(err.grpc_code),
        message=f"image {index} ({item_id or 'no id'}): {err.message}",
        kind=err.kind,
    )


def error_from_item(msg: common_pb2.ItemError) -> SafetyPairsError:
    """The exception a per-item error stands for (by kind, else by code)."""
    return error_class(msg.kind, status_code_from_value(msg.code))(msg.message)
