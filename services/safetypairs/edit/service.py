"""The edit service as a BentoML service: HTTP APIs, plus the gRPC server in the same process.

    bentoml serve safetypairs.edit.service:EditService --port 3002

Both protocols call one EditRuntime (one pipeline in memory, one set of model slots). Settings
come from SAFETYPAIRS_* environment variables (see safetypairs.serving.settings.EditSettings).
The shell (start, stop, probes, model_info) is safetypairs.serving.bento_shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import bentoml

from safetypairs.contract.errors import InvalidInput
from safetypairs.edit import http_api
from safetypairs.edit.runtime import EditRuntime
from safetypairs.edit.worker import EDIT
from safetypairs.serving.bento_shell import ServiceShell, bento_service
from safetypairs.serving.http import answer, read_upload
from safetypairs.serving.settings import EditSettings
from safetypairs.v1 import edit_pb2

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
@bento_service(name="safetypairs-edit", settings=SETTINGS, timeout_s=600)
class EditService(ServiceShell[EditRuntime]):
    worker_kind = EDIT

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
            request = http_api.form_request(
                read_upload(image, limit),
                image_id,
                _one_mask(mask, limit),
                region,
                instruction=instruction,
                seed=seed,
                steps=steps,
                guidance_scale=guidance_scale,
                image_guidance_scale=image_guidance_scale,
                negative_prompt=negative_prompt,
                format=format,
                change_threshold=change_threshold,
            )
            return await self.runtime.edit(request)

        return await answer(self.metrics, "edit", produce, ctx.response)
