"""The guard as a BentoML service: HTTP APIs, plus the gRPC server in the same process.

    bentoml serve safetypairs.guard.service:GuardService --port 3000

Both protocols call one GuardRuntime (one model copy, one micro-batcher). Settings come from
SAFETYPAIRS_* environment variables (see safetypairs.serving.settings). The shell (start,
stop, probes, model_info, categories) is safetypairs.serving.bento_shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import bentoml

from safetypairs.guard import oip_http
from safetypairs.guard.artifact import load_configured_guard
from safetypairs.guard.registry import describe_ref
from safetypairs.guard.servicer import guard_registration
from safetypairs.serving.bento_shell import CategoriesApi, ServiceShell, bento_service
from safetypairs.serving.grpc_server import ServiceRegistration
from safetypairs.serving.http import answer, uploaded_image, uploaded_images
from safetypairs.serving.settings import GuardSettings
from safetypairs.v1 import guard_pb2

if TYPE_CHECKING:
    from safetypairs.guard.outputs import GuardModel
    from safetypairs.guard.runtime import GuardRuntime

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


def _runtime(*args: Any) -> GuardRuntime:
    """The request handling around the loaded model. The model runtime (onnxruntime, numpy,
    Pillow, OpenCV, tritonclient) is imported here and below, in the worker: BentoML's arbiter
    imports this module too, only to read the service's configuration, and start-up waits
    for that import (a test keeps this module light)."""
    from safetypairs.guard.runtime import GuardRuntime

    return GuardRuntime(*args)


def _oip_registration(runtime: GuardRuntime) -> ServiceRegistration:
    from safetypairs.guard.oip import oip_registration

    return oip_registration(runtime)


@bentoml.asgi_app(oip_http.app, path="/v2")
@bento_service(name="safetypairs-guard", kind="guard", settings=SETTINGS, timeout_s=60)
class GuardService(ServiceShell["GuardRuntime"], CategoriesApi):
    runtime_class = staticmethod(_runtime)
    grpc_services = (guard_registration, _oip_registration)

    def load_model(self) -> tuple[GuardModel, str]:
        engine = load_configured_guard(self.settings)  # warmed up by the batching measurement
        model = self.settings.guard_model
        return engine, describe_ref(model) if model else "embedded default"

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
