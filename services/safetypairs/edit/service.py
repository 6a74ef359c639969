"""The edit service as a BentoML service: HTTP APIs, plus the gRPC server in the same process.

    bentoml serve safetypairs.edit.service:EditService --port 3002

Both protocols call one EditRuntime (one pipeline in memory, one set of model slots). Settings
come from SAFETYPAIRS_* environment variables (see safetypairs.serving.settings.EditSettings).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import bentoml

from safetypairs.contract.errors import InvalidInput
from safetypairs.edit import http_api
from safetypairs.edit.runtime import EditRuntime, load_configured_editor
from safetypairs.edit.servicer import edit_registration
from safetypairs.serving.auth import protect_http
from safetypairs.serving.grpc_server import GrpcServer
from safetypairs.serving.http import answer, read_upload
from safetypairs.serving.http_access import observe_http
from safetypairs.serving.lifecycle import WorkerLifecycle
from safetypairs.serving.logs import configure_logging
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.serving.settings import EditSettings
from safetypairs.v1 import edit_pb2

log = logging.getLogger("safetypairs.edit")

SETTINGS = EditSettings.from_env()
File = Annotated[Path, bentoml.validators.ContentType("*/*")]
# BentoML converts an optional upload only in a list field (`Path | None` stays unconverted).
NO_MASK: list[Path] = []


def _one_mask(uploads: list[Path], max_bytes: int) -> bytes | None:
    """The optional mask upload."""
    if not uploads:
        return None
    if len(uploads) > 1:
        raise InvalidInput(f"send at most one mask (got {len(uploads)})")
    return read_upload(uploads[0], max_bytes)


@bentoml.asgi_app(http_api.app, path="/v1/stream")
@bentoml.service(
    name="safetypairs-edit",
    workers=SETTINGS.workers,
    traffic={"timeout": 600},
)
class EditService:
    def __init__(self) -> None:
        configure_logging(SETTINGS.log_format)
        self.settings = SETTINGS
        engine, reference = load_configured_editor(self.settings)
        self.metrics = ServiceMetrics("edit", bentoml.metrics)
        self.runtime = EditRuntime(engine, self.settings, self.metrics, reference)
        self.grpc = GrpcServer.from_settings(
            [edit_registration(self.runtime)], self.metrics, self.settings
        )
        self.lifecycle = WorkerLifecycle(self.runtime, self.grpc, self.settings.shutdown_grace_s)
        if engine.card.notice:
            log.warning(engine.card.notice)

    @bentoml.on_startup
    async def start_worker(self) -> None:
        await self.lifecycle.start()

    @bentoml.on_shutdown
    async def stop_worker(self) -> None:
        await self.lifecycle.stop()

    def __is_ready__(self) -> bool:
        return self.lifecycle.ready

    @bentoml.api(route="/v1/edit")
    async def edit(
        self,
        ctx: bentoml.Context,
        image: File,
        instruction: str,
        image_id: str = "",
        seed: int | None = None,
        mask: list[File] = NO_MASK,
        region: str = "",
        steps: int | None = None,
        guidance_scale: float | None = None,
        image_guidance_scale: float | None = None,
        negative_prompt: str = "",
        format: str = "png",
        change_threshold: int | None = None,
    ) -> dict[str, Any]:
        """Edit one image (multipart upload); the answer is an EditResponse as JSON (image
        bytes in base64). Streamed progress: POST the same form to /v1/stream/edit."""

        async def produce() -> edit_pb2.EditResponse:
            limit = self.settings.max_image_bytes
            request = http_api.edit_request(
                image=read_upload(image, limit),
                mask=_one_mask(mask, limit),
                instruction=instruction,
                image_id=image_id,
                seed=seed,
                region=region,
                steps=steps,
                guidance_scale=guidance_scale,
                image_guidance_scale=image_guidance_scale,
                negative_prompt=negative_prompt,
                format=format,
                change_threshold=change_threshold,
            )
            return await self.runtime.edit(request)

        return await answer(self.metrics, "edit", produce, ctx.response)

    @bentoml.api(route="/v1/model_info")
    async def model_info(self, ctx: bentoml.Context) -> dict[str, Any]:
        async def produce() -> edit_pb2.EditModelInfo:
            return self.runtime.model_info()

        return await answer(self.metrics, "model_info", produce, ctx.response)


observe_http(EditService, "edit")  # first: outermost, so refused calls are logged too
protect_http(EditService, SETTINGS)
