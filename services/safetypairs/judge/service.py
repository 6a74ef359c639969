"""The judge as a BentoML service: HTTP APIs, plus the gRPC server in the same process.

    bentoml serve safetypairs.judge.service:JudgeService --port 3001

Both protocols call one JudgeRuntime (one model copy, one micro-batcher). Settings come from
SAFETYPAIRS_* environment variables (see safetypairs.serving.settings.JudgeSettings). The
shell (start, stop, probes, model_info, categories) is safetypairs.serving.bento_shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import bentoml

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.policy import parse_policy, policy_from_dict
from safetypairs.judge.runtime import JudgeRuntime
from safetypairs.judge.worker import JUDGE
from safetypairs.serving.bento_shell import CategoriesApi, ServiceShell, bento_service
from safetypairs.serving.http import answer, uploaded_image, uploaded_images
from safetypairs.serving.settings import JudgeSettings
from safetypairs.v1 import judge_pb2

SETTINGS = JudgeSettings.from_env()
File = Annotated[Path, bentoml.validators.ContentType("*/*")]
_DIRECTIONS = {
    "to_safe": judge_pb2.EDIT_DIRECTION_TO_SAFE,
    "to_unsafe": judge_pb2.EDIT_DIRECTION_TO_UNSAFE,
}


# BentoML reads every form field that parses as JSON as JSON: a JSON policy arrives as a dict.
PolicyField = str | dict[str, Any]


def _policy_choice(policy: PolicyField, policy_name: str) -> judge_pb2.PolicyChoice:
    """HTTP form fields -> policy: `policy` is a policy document (YAML or JSON), `policy_name`
    a policy the server knows; neither = the server's default. Parsing a large policy takes
    a while: call it off the event loop."""
    if policy and policy_name:
        raise InvalidInput("send either policy (a document) or policy_name, not both")
    if isinstance(policy, dict):
        return judge_pb2.PolicyChoice(custom=policy_from_dict(policy, "request policy").to_proto())
    if policy:
        return judge_pb2.PolicyChoice(custom=parse_policy(policy, "request policy").to_proto())
    if policy_name:
        return judge_pb2.PolicyChoice(name=policy_name)
    return judge_pb2.PolicyChoice()


def _rate_options(categories: str, rationale: bool, threshold: float) -> judge_pb2.RateOptions:
    codes = [c.strip() for c in categories.split(",") if c.strip()]
    return judge_pb2.RateOptions(categories=codes, rationale=rationale, threshold=threshold)


@bento_service(name="safetypairs-judge", settings=SETTINGS, timeout_s=300)
class JudgeService(ServiceShell[JudgeRuntime], CategoriesApi):
    worker_kind = JUDGE

    async def _policy_choice(self, policy: PolicyField, policy_name: str) -> judge_pb2.PolicyChoice:
        return await self.runtime.on_cpu_pool(_policy_choice, policy, policy_name)

    @bentoml.api(route="/v1/rate")
    async def rate(
        self,
        ctx: bentoml.Context,
        image: File,
        image_id: str = "",
        policy: PolicyField = "",
        policy_name: str = "",
        categories: str = "",
        rationale: bool = False,
        threshold: float = 0.0,
    ) -> dict[str, Any]:
        """Rate one image (multipart upload) against a policy; the answer is a RateResponse."""

        async def produce() -> judge_pb2.RateResponse:
            request = judge_pb2.RateRequest(
                image=uploaded_image(image, image_id, self.settings.max_image_bytes),
                policy=await self._policy_choice(policy, policy_name),
                options=_rate_options(categories, rationale, threshold),
            )
            return await self.runtime.rate(request)

        return await answer(self.metrics, "rate", produce, ctx.response)

    @bentoml.api(route="/v1/rate_batch")
    async def rate_batch(
        self,
        ctx: bentoml.Context,
        images: list[File],
        image_ids: list[str] | None = None,
        policy: PolicyField = "",
        policy_name: str = "",
        categories: str = "",
        rationale: bool = False,
        threshold: float = 0.0,
    ) -> dict[str, Any]:
        """Rate several images; a bad image fails only its own result."""

        async def produce() -> judge_pb2.RateBatchResponse:
            request = judge_pb2.RateBatchRequest(
                images=uploaded_images(images, image_ids, self.settings.max_image_bytes),
                policy=await self._policy_choice(policy, policy_name),
                options=_rate_options(categories, rationale, threshold),
            )
            return await self.runtime.rate_batch(request)

        return await answer(self.metrics, "rate_batch", produce, ctx.response)

    @bentoml.api(route="/v1/propose_edits")
    async def propose_edits(
        self,
        ctx: bentoml.Context,
        image: File,
        direction: str,
        image_id: str = "",
        category: str = "",
        count: int = 4,
        seed: int = 0,
        policy: PolicyField = "",
        policy_name: str = "",
    ) -> dict[str, Any]:
        """Propose `count` edit instructions moving the image to_safe or to_unsafe."""

        async def produce() -> judge_pb2.ProposeEditsResponse:
            if direction not in _DIRECTIONS:
                raise InvalidInput(f"direction {direction!r} must be to_safe or to_unsafe")
            if seed < 0:
                raise InvalidInput(f"seed {seed} must not be negative")
            request = judge_pb2.ProposeEditsRequest(
                image=uploaded_image(image, image_id, self.settings.max_image_bytes),
                policy=await self._policy_choice(policy, policy_name),
                direction=_DIRECTIONS[direction],
                category=category,
                count=count,
                seed=seed,
            )
            return await self.runtime.propose_edits(request)

        return await answer(self.metrics, "propose_edits", produce, ctx.response)
