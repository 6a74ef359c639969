"""Request ids: one per call, sent as gRPC metadata `x-request-id` (HTTP header `X-Request-ID`),
logged by every service and echoed back (gRPC trailing metadata, HTTP response header).

The SDK generates one per call unless the caller names it for the calls in a block:

    with request_id("ticket-4711"):
        client.screen(image)
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterable, Iterator

REQUEST_ID_METADATA_KEY = "x-request-id"
REQUEST_ID_HEADER = "X-Request-ID"
# Longest id a service accepts from a caller; a longer one is replaced (ids end up in log lines).
MAX_REQUEST_ID_CHARS = 128

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "safetypairs_request_id", default=None
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def usable(value: str | None) -> bool:
    """Whether a caller's id can be logged as it is: printable ASCII, not too long."""
    return (
        bool(value)
        and len(value) <= MAX_REQUEST_ID_CHARS
        and value.isascii()
        and value.isprintable()
    )


def incoming_request_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """A service's id for a gRPC call: the caller's when it sent a usable one, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_METADATA_KEY and isinstance(value, str) and usable(value):
            return value
    return new_request_id()


@contextlib.contextmanager
def request_id(value: str) -> Iterator[str]:
    """Send `value` as the request id of every call made inside the block (thread- and
    task-local, through a context variable)."""
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


def outgoing_request_id() -> str:
    """The id the next call sends: the block's, or a fresh one."""
    return _current.get() or new_request_id()
