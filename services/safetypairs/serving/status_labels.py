"""A call's outcome as both protocols name it, for the request metrics and the access log.

Every call, HTTP or gRPC, carries two labels, each one vocabulary: `code`, the HTTP status
number (what Prometheus HTTP instrumentation calls `code`: "200", "400"), and `grpc_code`, the
gRPC status name (what gRPC instrumentation calls `grpc_code`: "OK", "INVALID_ARGUMENT"). A gRPC
call's HTTP status and an HTTP call's gRPC status are the standard translations
(google/rpc/code.proto; the gRPC HTTP-to-gRPC mapping), the same ones
safetypairs.contract.errors gives each error class.
"""

from __future__ import annotations

from http import HTTPStatus

import grpc

from safetypairs.contract.errors import SafetyPairsError

_S = grpc.StatusCode
HTTP_FOR_GRPC: dict[grpc.StatusCode, int] = {
    _S.OK: 200,
    _S.CANCELLED: 499,  # client closed request
    _S.UNKNOWN: 500,
    _S.INVALID_ARGUMENT: 400,
    _S.DEADLINE_EXCEEDED: 504,
    _S.NOT_FOUND: 404,
    _S.ALREADY_EXISTS: 409,
    _S.PERMISSION_DENIED: 403,
    _S.RESOURCE_EXHAUSTED: 429,
    _S.FAILED_PRECONDITION: 400,
    _S.ABORTED: 409,
    _S.OUT_OF_RANGE: 400,
    _S.UNIMPLEMENTED: 501,
    _S.INTERNAL: 500,
    _S.UNAVAILABLE: 503,
    _S.DATA_LOSS: 500,
    _S.UNAUTHENTICATED: 401,
}
GRPC_FOR_HTTP: dict[int, grpc.StatusCode] = {
    400: _S.INVALID_ARGUMENT,
    401: _S.UNAUTHENTICATED,
    403: _S.PERMISSION_DENIED,
    404: _S.NOT_FOUND,
    405: _S.UNIMPLEMENTED,
    409: _S.FAILED_PRECONDITION,
    413: _S.RESOURCE_EXHAUSTED,
    422: _S.INVALID_ARGUMENT,
    429: _S.RESOURCE_EXHAUSTED,
    499: _S.CANCELLED,
    501: _S.UNIMPLEMENTED,
    503: _S.UNAVAILABLE,
    504: _S.DEADLINE_EXCEEDED,
    507: _S.RESOURCE_EXHAUSTED,
}


Status = int | HTTPStatus | grpc.StatusCode | SafetyPairsError


def status_labels(status: Status) -> tuple[str, str]:
    """(`code`, `grpc_code`) of an outcome given in either protocol's terms, or of an error
    (its class names both)."""
    if isinstance(status, SafetyPairsError):
        return str(status.http_status.value), status.grpc_code.name
    if isinstance(status, grpc.StatusCode):
        return str(HTTP_FOR_GRPC.get(status, 500)), status.name
    http = int(status)
    if 200 <= http < 300:
        return str(http), _S.OK.name
    return str(http), GRPC_FOR_HTTP.get(http, _S.INTERNAL if http >= 500 else _S.UNKNOWN).name
