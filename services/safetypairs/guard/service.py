"""The guard as a BentoML service: HTTP APIs, plus the gRPC server in the same process.

    bentoml serve safetypairs.guard.service:GuardService --port 3000

Both protocols call one GuardRuntime (one model copy, one micro-batcher). Settings come from
SAFETYPAIRS_* environment variables (see safetypairs.serving.settings). The shell (start,
stop, probes, model_info, categories) is safetypairs.serving.bento_shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import bentoml

from safetypairs.guard import oip_http
from safetypairs.guard.worker import GUARD
from safetypairs.serving.bento_shell import CategoriesApi, ServiceShell, bento_service
from safetypairs.serving.http import answer, uploaded_image, uploaded_images
from safetypairs.serving.settings import GuardSettings
from safetypairs.v1 import guard_pb2

SETTINGS = GuardSettings.from_env()
File = Annotated[Path, bentoml.validators.ContentType("*/*")]


def _options(
    categories: str, thresholds: dict[str, float] | None, member_details: bool
) -> guard_pb2.ScreenOptions:
    """HTTP form fields -> options: categories as comma-separated codes ("O1,O6"),
    thresholds as a JSON object ({"O6": 0.3})."""
    codes = [c.strip() for c in categories.split(",") if c.strip()]
    return guard_pb2.ScreenOptions(
        categories=codes, thresholds=thresholds or {}, member_details=member_details
    )


@bentoml.asgi_app(oip_http.app, path="/v2")
@bento_service(name="safetypairs-guard", settings=SETTINGS, timeout_s=60)
class GuardService(ServiceShell["GuardRuntime"], CategoriesApi):
    worker_kind = GUARD

    @bentoml.api(route="/v1/screen")
    async def screen(
        self,
        ctx: bentoml.Context,
        image: File,
        image_id: str = "",
        categories: str = "",
        thresholds: dict[str, float] | None = None,
        member_details: bool = False,
    ) -> dict[str, Any]:
        """Screen one image (multipart upload); the answer is a ScreenResponse as JSON."""

        async def produce() -> guard_pb2.ScreenResponse:
            return await self.runtime.screen(
                guard_pb2.ScreenRequest(
                    image=uploaded_image(image, image_id, self.settings.max_image_bytes),
                    options=_options(categories, thresholds, member_details),
                )
            )

        return await answer(self.metrics, "screen", produce, ctx.response)

    @bentoml.api(route="/v1/screen_batch")
    async def screen_batch(
        self,
        ctx: bentoml.Context,
        images: list[File],
        image_ids: list[str] | None = None,
        categories: str = "",
        thresholds: dict[str, float] | None = None,
        member_details: bool = False,
    ) -> dict[str, Any]:
        """Screen several images; a bad image fails only its own result."""

        async def produce() -> guard_pb2.ScreenBatchResponse:
            return await self.runtime.screen_batch(
                guard_pb2.ScreenBatchRequest(
                    images=uploaded_images(images, image_ids, self.settings.max_image_bytes),
                    options=_options(categories, thresholds, member_details),
                )
            )

        return await answer(self.metrics, "screen_batch", produce, ctx.response)
