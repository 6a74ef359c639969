"""The edit service's HTTP side: multipart form fields -> EditRequest (one parser for both
routes), and the streaming route, NDJSON under /v1/stream:

    POST /v1/stream/edit   same form as /v1/edit; one EditEvent per line (progress..., result)

Bad input is answered before the stream starts, with the mapped status and error body; an
error after that (rare: the model failing mid-edit) arrives as a last `{"error": ...}` line.
A client that disconnects cancels its edit, which frees its slot.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from safetypairs.contract.edit_request import edit_request
from safetypairs.contract.errors import InvalidInput, PayloadTooLarge, SafetyPairsError
from safetypairs.serving.http import error_body, message_to_json
from safetypairs.serving.status_labels import Status
from safetypairs.v1 import common_pb2, edit_pb2

log = logging.getLogger(__name__)


def parse_region(text: str) -> tuple[int, int, int, int]:
    """ "x,y,width,height" in source pixels."""
    parts = [p.strip() for p in text.split(",")]
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise InvalidInput(f"region {text!r} must be x,y,width,height in pixels") from None
    return x, y, w, h


def form_request(
    image: bytes, image_id: str, mask: bytes | None, region: str, **options: Any
) -> edit_pb2.EditRequest:
    """An EditRequest from the HTTP form's fields: uploads as bytes, the region as text, the
    other fields (instruction, seed, steps, ...) as edit_request takes them (None: not sent)."""
    return edit_request(
        image=common_pb2.Image(data=image, id=image_id),
        mask=mask,
        region=parse_region(region) if region else None,
        **options,
    )


async def _upload(form: Any, name: str, max_bytes: int, required: bool) -> bytes | None:
    value = form.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"the form has no {name!r} file")
        return None
    if not isinstance(value, UploadFile):
        raise InvalidInput(f"{name!r} must be a file upload")
    if value.size is not None and value.size > max_bytes:
        raise PayloadTooLarge(f"{name} is {value.size} bytes, over the limit of {max_bytes} bytes")
    return await value.read()


def _number(form: Any, name: str, kind: type) -> Any:
    raw = form.get(name)
    if raw is None or raw == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        raise InvalidInput(f"{name} {raw!r} is not a valid {kind.__name__}") from None


async def _request_from_form(request: Request, max_bytes: int) -> edit_pb2.EditRequest:
    form = await request.form()
    image = await _upload(form, "image", max_bytes, required=True)
    assert image is not None  # required
    return form_request(
        image,
        str(form.get("image_id", "")),
        await _upload(form, "mask", max_bytes, required=False),
        str(form.get("region", "")),
        instruction=str(form.get("instruction", "")),
        seed=_number(form, "seed", int),
        steps=_number(form, "steps", int),
        guidance_scale=_number(form, "guidance_scale", float),
        image_guidance_scale=_number(form, "image_guidance_scale", float),
        negative_prompt=str(form.get("negative_prompt", "")),
        format=str(form.get("format", "png")),
        change_threshold=_number(form, "change_threshold", int),
    )


def _line(payload: dict[str, Any]) -> bytes:
    return (json.dumps(payload) + "\n").encode()


async def _edit_stream(request: Request) -> Response:
    import bentoml

    service = bentoml.get_current_service()
    runtime, metrics = service.runtime, service.metrics
    started = time.perf_counter()
    try:
        events = runtime.edit_events(
            await _request_from_form(request, runtime.settings.max_image_bytes)
        )
        first = await anext(events)  # bad input and overload fail here, before any byte
    except SafetyPairsError as exc:
        metrics.record("http", "edit_stream", exc, 0.0)
        return JSONResponse(error_body(exc), status_code=exc.http_status.value)

    async def body() -> AsyncIterator[bytes]:
        status: Status = 200
        try:
            yield _line(message_to_json(first))
            async for event in events:
                yield _line(message_to_json(event))
        except SafetyPairsError as exc:
            status = exc
            yield _line(error_body(exc))
        except Exception:
            log.exception("unexpected error in edit_stream")
            status = 500
            yield _line(error_body(SafetyPairsError("internal error; see the server log")))
        except BaseException:  # the client went away: its edit is cancelled
            status = 499
            raise
        finally:
            await events.aclose()
            metrics.record("http", "edit_stream", status, time.perf_counter() - started)

    return StreamingResponse(body(), media_type="application/x-ndjson")


app = Starlette(routes=[Route("/edit", _edit_stream, methods=["POST"])])
