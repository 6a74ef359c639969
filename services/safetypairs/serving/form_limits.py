"""Multipart uploads past Starlette's limits answered 413/400, not 500.

Starlette refuses a form with more than 1,000 files or fields, or a text field over 1 MiB, with
an HTTPException that BentoML's API wrapper turns into a 500 "unexpected error"; BentoML then
reads every text field as JSON where it parses, and a deeply nested one raised RecursionError
(another 500). This ASGI
middleware reads the same body as it streams past (no copy: a counting parser, the same
python-multipart that Starlette uses) and, on the first chunk past a limit, stops the request
and answers the contract's error body itself: PayloadTooLarge (413) for a count or size,
InvalidInput (400) for a body that is not valid multipart or a field nested too deeply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safetypairs.contract.errors import InvalidInput, PayloadTooLarge, SafetyPairsError
from safetypairs.serving.http import error_body
from safetypairs.serving.metrics import ServiceMetrics

# Starlette's own limits (Request.form's defaults), checked here first.
MAX_FILES = 1000
MAX_FIELDS = 1000
MAX_FIELD_BYTES = 1024 * 1024
# Brackets a text field may nest (a policy document needs 4); json.loads recurses per level.
MAX_FIELD_NESTING = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def check_nesting(field: bytes) -> None:
    """InvalidInput when `field`, read as JSON, nests brackets deeper than MAX_FIELD_NESTING;
    C-speed counting first, so only a field with that many brackets is walked."""
    if field.count(b"[") + field.count(b"{") <= MAX_FIELD_NESTING:
        return
    depth = 0
    for ch in _JSON_STRING.sub(b"", field).translate(None, _NOT_BRACKETS):
        depth += 1 if ch in b"[{" else -1
        if depth > MAX_FIELD_NESTING:
            raise InvalidInput(f"a text field of the form nests deeper than {MAX_FIELD_NESTING}")


class _FormRefused(Exception):
    """Raised into the app's body reading: the form broke a limit (the middleware answers)."""


class _PartCounter:
    """Counts files and fields and a text field's bytes as the body is fed in."""

    def __init__(self, boundary: bytes) -> None:
        self.files = self.fields = self.field_bytes = 0
        self._is_file = False
        self._header = b""
        self._disposition = b""
        self._field = bytearray()  # the current text field (at most MAX_FIELD_BYTES)
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidInput(f"the body is not valid multipart form data: {exc}") from None

    def _begin(self) -> None:
        self._disposition = b""
        self.field_bytes = 0

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header = data[start:end].lower()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        if self._header == b"content-disposition":
            self._disposition += data[start:end]

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._is_file = b"filename" in options
        if self._is_file:
            self.files += 1
            if self.files > MAX_FILES:
                raise PayloadTooLarge(f"the form has more than {MAX_FILES} files")
        else:
            self.fields += 1
            if self.fields > MAX_FIELDS:
                raise PayloadTooLarge(f"the form has more than {MAX_FIELDS} fields")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            return
        self.field_bytes += end - start
        if self.field_bytes > MAX_FIELD_BYTES:
            raise PayloadTooLarge(f"a text field of the form is over {MAX_FIELD_BYTES} bytes")
        self._field += data[start:end]

    def _end(self) -> None:
        if not self._is_file:
            check_nesting(bytes(self._field))
            self._field.clear()


def _boundary(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-type":
            kind, options = parse_options_header(value)
            return options.get(b"boundary") if kind == b"multipart/form-data" else None
    return None


class FormLimitsMiddleware:
    """Refuses a multipart body past the limits above with the mapped error, counted in
    `metrics()` under the route's method name (`api_names`)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Callable[[], ServiceMetrics],
        api_names: Mapping[str, str],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.api_names = dict(api_names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        boundary = _boundary(scope) if scope["type"] == "http" else None
        if not boundary:
            await self.app(scope, receive, send)
            return
        counter = _PartCounter(boundary)
        refusal: SafetyPairsError | None = None

        async def counted_receive() -> Message:
            nonlocal refusal
            message = await receive()
            if message["type"] == "http.request" and refusal is None:
                try:
                    counter.feed(message.get("body", b""))
                except SafetyPairsError as exc:
                    refusal = exc
                    raise _FormRefused(exc.message) from None
            return message

        async def refusing_send(message: Message) -> None:
            if refusal is None:
                await send(message)
            elif message["type"] == "http.response.start":  # the app's 500: ours instead
                status = refusal.http_status.value
                method = self.api_names.get(scope["path"], "other")
                self.metrics().record("http", method, refusal, 0.0)
                await JSONResponse(error_body(refusal), status_code=status)(scope, receive, send)

        try:
            await self.app(scope, counted_receive, refusing_send)
        except _FormRefused:  # the app let it through without answering
            await refusing_send({"type": "http.response.start", "status": 500})
