"""The guard as a BentoML service: HTTP APIs, plus the gRPC server in the same process.

    bentoml serve safetypairs.guard.service:GuardService --port 3000

Both protocols call one GuardRuntime (one model copy, one micro-batcher). Settings come from
SAFETYPAIRS_* environment variables (see safetypairs.serving.settings).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import bentoml

from safetypairs.guard import oip_http
from safetypairs.guard.artifact import load_configured_guard
from safetypairs.guard.oip import oip_registration
from safetypairs.guard.registry import describe_ref
from safetypairs.guard.runtime import GuardRuntime
from safetypairs.guard.servicer import guard_registration
from safetypairs.serving.auth import protect_http
from safetypairs.serving.grpc_server import GrpcServer
from safetypairs.serving.http import answer, read_upload
from safetypairs.serving.http_access import observe_http
from safetypairs.serving.lifecycle import WorkerLifecycle
from safetypairs.serving.logs import configure_logging
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.serving.settings import GuardSettings
from safetypairs.v1 import common_pb2, guard_pb2

log = logging.getLogger("safetypairs.guard")

SETTINGS = GuardSettings.from_env()


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
@bentoml.service(
    name="safetypairs-guard",
    workers=SETTINGS.workers,
    traffic={"timeout": 60},
)
class GuardService:
    def __init__(self) -> None:
        configure_logging(SETTINGS.log_format)
        self.settings = SETTINGS
        self.engine = load_configured_guard(self.settings)
        self.engine.warmup((1, min(4, self.settings.max_batch_size)))
        self.metrics = ServiceMetrics("guard", bentoml.metrics)
        reference = describe_ref(self.settings.guard_model) if self.settings.guard_model else None
        self.runtime = GuardRuntime(
            self.engine, self.settings, self.metrics, reference or "embedded default"
        )
        self.grpc = GrpcServer.from_settings(
            [guard_registration(self.runtime), oip_registration(self.runtime)],
            self.metrics,
            self.settings,
        )
        self.lifecycle = WorkerLifecycle(self.runtime, self.grpc, self.settings.shutdown_grace_s)
        if self.engine.card.notice:
            log.warning(self.engine.card.notice)

    @bentoml.on_startup
    async def start_worker(self) -> None:
        await self.lifecycle.start()

    @bentoml.on_shutdown
    async def stop_worker(self) -> None:
        await self.lifecycle.stop()

    def __is_ready__(self) -> bool:
        return self.lifecycle.ready

    @bentoml.api(route="/v1/screen")
    async def screen(
        self,
        ctx: bentoml.Context,
        image: Annotated[Path, bentoml.validators.ContentType("*/*")],
        image_id: str = "",
        categories: str = "",
        thresholds: dict[str, float] | None = None,
        member_details: bool = False,
    ) -> dict[str, Any]:
        """Screen one image (multipart upload); the answer is a ScreenResponse as JSON."""

        async def produce() -> guard_pb2.ScreenResponse:
            data = read_upload(image, self.settings.max_image_bytes)
            return await self.runtime.screen(
                guard_pb2.ScreenRequest(
                    image=common_pb2.Image(data=data, id=image_id),
                    options=_options(categories, thresholds, member_details),
                )
            )

        return await answer(self.metrics, "screen", produce, ctx.response)

    @bentoml.api(route="/v1/screen_batch")
    async def screen_batch(
        self,
        ctx: bentoml.Context,
        images: list[Annotated[Path, bentoml.validators.ContentType("*/*")]],
        image_ids: list[str] | None = None,
        categories: str = "",
        thresholds: dict[str, float] | None = None,
        member_details: bool = False,
    ) -> dict[str, Any]:
        """Screen several images; a bad image fails only its own result."""

        async def produce() -> guard_pb2.ScreenBatchResponse:
            ids = image_ids or []
            if ids and len(ids) != len(images):
                from safetypairs.contract.errors import InvalidInput

                raise InvalidInput(f"{len(ids)} image_ids for {len(images)} images")
            msgs = [
                common_pb2.Image(
                    data=read_upload(p, self.settings.max_image_bytes),
                    id=ids[i] if ids else "",
                )
                for i, p in enumerate(images)
            ]
            return await self.runtime.screen_batch(
                guard_pb2.ScreenBatchRequest(
                    images=msgs, options=_options(categories, thresholds, member_details)
                )
            )

        return await answer(self.metrics, "screen_batch", produce, ctx.response)

    @bentoml.api(route="/v1/categories")
    async def categories(self, ctx: bentoml.Context) -> dict[str, Any]:
        async def produce() -> common_pb2.ListCategoriesResponse:
            return self.runtime.list_categories()

        return await answer(self.metrics, "categories", produce, ctx.response)

    @bentoml.api(route="/v1/model_info")
    async def model_info(self, ctx: bentoml.Context) -> dict[str, Any]:
        async def produce() -> guard_pb2.ModelInfo:
            return self.runtime.model_info()

        return await answer(self.metrics, "model_info", produce, ctx.response)


observe_http(GuardService, "guard")  # first: outermost, so refused calls are logged too
protect_http(GuardService, SETTINGS)
