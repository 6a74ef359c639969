"""The Open Inference Protocol v2 REST routes, mounted under /v2 of the BentoML HTTP server.

    GET  /v2                              server metadata
    GET  /v2/health/live | /v2/health/ready
    GET  /v2/models/{name}[/versions/{v}]          model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

JSON has no bytes, so the `images` BYTES input carries base64 strings and says so with
`"parameters": {"content_type": "base64"}` (the convention of MLServer and KServe runtimes).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from safetypairs.contract.errors import InvalidInput, SafetyPairsError
from safetypairs.guard.oip_model import INPUT, OUTPUT, check_model, model_metadata, server_metadata

if TYPE_CHECKING:
    from safetypairs.guard.runtime import GuardRuntime


def _runtime() -> GuardRuntime:
    import bentoml

    return bentoml.get_current_service().runtime


def _error(exc: SafetyPairsError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.http_status.value)


def _model(request: Request) -> GuardRuntime:
    runtime = _runtime()
    check_model(runtime, request.path_params["name"], request.path_params.get("version", ""))
    return runtime


async def _server(request: Request) -> JSONResponse:
    return JSONResponse(server_metadata())


async def _live(request: Request) -> JSONResponse:
    return JSONResponse({"live": True})


async def _ready(request: Request) -> JSONResponse:
    ready = _runtime().ready
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


async def _model_metadata(request: Request) -> JSONResponse:
    try:
        return JSONResponse(model_metadata(_model(request)))
    except SafetyPairsError as exc:
        return _error(exc)


async def _model_ready(request: Request) -> JSONResponse:
    try:
        ready = _model(request).ready
    except SafetyPairsError as exc:
        return _error(exc)
    return JSONResponse(
        {"name": request.path_params["name"], "ready": ready}, status_code=200 if ready else 503
    )


def _images(body: Any) -> list[bytes]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise InvalidInput("the request body must be a JSON object with an 'inputs' list")
    inputs = body["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict) or inputs[0].get("name") != INPUT:
        raise InvalidInput(f"expected one input tensor {INPUT!r} (BYTES)")
    tensor = inputs[0]
    if tensor.get("datatype") != "BYTES":
        raise InvalidInput(f"input {INPUT!r} must be BYTES, not {tensor.get('datatype')!r}")
    if (tensor.get("parameters") or {}).get("content_type") != "base64":
        raise InvalidInput(
            f'input {INPUT!r}: send images as base64 strings with "parameters": '
            '{"content_type": "base64"}'
        )
    data = tensor.get("data")
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise InvalidInput(f"input {INPUT!r}: data must be a list of base64 strings")
    try:
        return [base64.b64decode(d, validate=True) for d in data]
    except binascii.Error as exc:
        raise InvalidInput(f"input {INPUT!r}: not valid base64: {exc}") from None


async def _infer(request: Request) -> JSONResponse:
    runtime = _runtime()
    try:
        with runtime.metrics.track_http("oip_infer"):
            check_model(
                runtime, request.path_params["name"], request.path_params.get("version", "")
            )
            try:
                body = await request.json()
            except ValueError:
                raise InvalidInput("the request body is not valid JSON") from None
            probs = await runtime.probabilities(_images(body))
    except SafetyPairsError as exc:
        return _error(exc)
    card = runtime.engine.card
    return JSONResponse(
        {
            "model_name": card.name,
            "model_version": card.version,
            "id": body.get("id", ""),
            "outputs": [
                {
                    "name": OUTPUT,
                    "datatype": "FP32",
                    "shape": list(probs.shape),
                    "data": probs.ravel().tolist(),
                }
            ],
        }
    )


def _model_routes(prefix: str) -> list[Route]:
    return [
        Route(prefix, _model_metadata),
        Route(f"{prefix}/ready", _model_ready),
        Route(f"{prefix}/infer", _infer, methods=["POST"]),
    ]


app = Starlette(
    routes=[
        Route("/", _server),
        Route("/health/live", _live),
        Route("/health/ready", _ready),
        *_model_routes("/models/{name}"),
        *_model_routes("/models/{name}/versions/{version}"),
    ]
)
