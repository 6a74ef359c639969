"""HTTP adapter helpers: answers are the contract's messages in their canonical JSON form, enum
values as the SDK and CLI spell them ("safe", not RATING_SAFE: contract/enum_names.py), no number
for a category the model does not cover; errors are mapped
from SafetyPairsError by its `http_status` (the one mapping table)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import Message

from safetypairs.contract.enum_names import plain_json
from safetypairs.contract.errors import InvalidInput, PayloadTooLarge, SafetyPairsError
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.v1 import common_pb2

# What a score the model has no output for says nothing about (proto3 would print 0.0).
_NO_NUMBER = ("probability", "threshold")


def message_to_json(msg: Message) -> dict[str, Any]:
    """The canonical JSON of `msg` as users read it: enum values as the SDK spells them
    ("safe"), and a category score that is `not_covered` with no number (null), never 0.0,
    which a consumer would read as "safe"."""
    data = json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _no_number_where_not_covered(plain_json(msg.DESCRIPTOR, data))


def _no_number_where_not_covered(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("not_covered") is True:
            value.update(dict.fromkeys(_NO_NUMBER))
        for v in value.values():
            _no_number_where_not_covered(v)
    elif isinstance(value, list):
        for v in value:
            _no_number_where_not_covered(v)
    return value


def error_body(exc: SafetyPairsError) -> dict[str, Any]:
    return {"error": {"code": exc.grpc_code.name, "kind": exc.kind, "message": exc.message}}


def read_upload(path: Path, max_bytes: int) -> bytes:
    """An uploaded file's bytes, refusing an oversized one before reading it."""
    size = path.stat().st_size
    if size > max_bytes:
        raise PayloadTooLarge(f"image is {size} bytes, over the limit of {max_bytes} bytes")
    return path.read_bytes()


# BentoML keeps an upload in a NamedTemporaryFile whose suffix is the file name the client sent
# (_bentoml_sdk.validators.FileSchema.decode): "tmp" + 8 random characters + that name.
_UPLOAD_NAME = re.compile(r"^tmp[a-z0-9_]{8}(.+)$")


def upload_name(path: Path) -> str:
    """The file name the client gave an upload ("" when it gave none)."""
    found = _UPLOAD_NAME.match(path.name)
    return found.group(1) if found else ""


def uploaded_image(path: Path, image_id: str, max_bytes: int) -> common_pb2.Image:
    """An upload as an Image message, named by the `image_id` sent or else by its file name,
    so that every answer says which image it is about."""
    return common_pb2.Image(data=read_upload(path, max_bytes), id=image_id or upload_name(path))


def uploaded_images(
    paths: Sequence[Path], ids: Sequence[str] | None, max_bytes: int
) -> list[common_pb2.Image]:
    """A batch's uploads as Image messages; `ids`, when sent, names each image in order."""
    ids = ids or []
    if ids and len(ids) != len(paths):
        raise InvalidInput(f"{len(ids)} image_ids for {len(paths)} images")
    return [uploaded_image(p, ids[i] if ids else "", max_bytes) for i, p in enumerate(paths)]


def _not_unicode(exc: UnicodeEncodeError) -> InvalidInput:
    """A text field with a lone surrogate (JSON "\\udc80" in a form field, say)."""
    bad = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else ""
    return InvalidInput(
        f"a text field holds {bad!r} at position {exc.start}, not valid Unicode text ({exc.reason})"
    )


class ResponseStatus(Protocol):
    status_code: int


async def answer(
    metrics: ServiceMetrics,
    method: str,
    produce: Callable[[], Awaitable[Message]],
    response: ResponseStatus,
) -> dict[str, Any]:
    """Run one HTTP API call: JSON of the produced message, or the mapped error body with
    `response.status_code` set from the error."""
    try:
        with metrics.track_http(method):
            try:
                return message_to_json(await produce())
            except UnicodeEncodeError as exc:  # a form field protobuf cannot carry as UTF-8
                raise _not_unicode(exc) from None
    except SafetyPairsError as exc:
        response.status_code = exc.http_status.value
        return error_body(exc)
