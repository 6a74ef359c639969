"""The judge's request handling, shared by the gRPC servicer and the HTTP API.

Requests are validated and their images decoded (thread pool) before they reach the model, so
a bad request fails alone. Rating requests from both protocols meet in one micro-batcher and
share forward passes; edit proposals go through the same queue (one model, one thread) and
run one request at a time. A caller that goes away (deadline, disconnect) is skipped while
queued and stops its generation while running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
import transformers
from PIL import Image

from safetypairs.contract.errors import InvalidInput, SafetyPairsError, item_error
from safetypairs.contract.images import decode_image
from safetypairs.contract.policy import Policy, default_policy, load_policy, policy_from_dict
from safetypairs.judge.default_model import ensure_default_judge
from safetypairs.judge.engine import (
    TO_SAFE,
    TO_UNSAFE,
    JudgeEngine,
    Proposal,
    ProposeJob,
    RateJob,
    RateOutput,
)
from safetypairs.judge.prompts import check_prompt_size
from safetypairs.serving.admission import check_image_count
from safetypairs.serving.model_refs import configured_model
from safetypairs.serving.runtime_skeleton import BatchedRuntime
from safetypairs.serving.settings import JudgeSettings
from safetypairs.serving.torch_env import quiet_torchvision_fallback, set_threads
from safetypairs.v1 import common_pb2, judge_pb2

_DIRECTIONS = {
    judge_pb2.EDIT_DIRECTION_TO_SAFE: TO_SAFE,
    judge_pb2.EDIT_DIRECTION_TO_UNSAFE: TO_UNSAFE,
}
_ACTIONS = {
    "add": judge_pb2.EDIT_ACTION_ADD,
    "remove": judge_pb2.EDIT_ACTION_REMOVE,
    "change": judge_pb2.EDIT_ACTION_CHANGE,
}
# Images are shrunk to the model's input size anyway; decode JPEGs at a reduced scale.
_DRAFT_SIZE = 1024


def load_configured_judge(settings: JudgeSettings) -> tuple[JudgeEngine, str]:
    """The engine for the settings' model (the embedded default when none is set) and the
    reference it was loaded from."""
    set_threads(settings.torch_threads)
    quiet_torchvision_fallback()
    path, reference = configured_model(
        settings.judge_model, lambda: ensure_default_judge(settings.home_dir())
    )
    engine = JudgeEngine(
        path,
        device=settings.judge_device,
        dtype=settings.judge_dtype,
        trust_remote_code=settings.judge_trust_remote_code,
        prompts_dir=settings.judge_prompts_dir,
        rationale_chars=settings.judge_rationale_chars,
    )
    return engine, reference


def _policy_from_proto(msg: common_pb2.Policy) -> Policy:
    """A custom policy from a request, validated exactly like a policy file."""
    return policy_from_dict(
        {
            "name": msg.name,
            "version": msg.version or "1",
            "categories": [
                {
                    "code": c.code,
                    "name": c.name,
                    "should_not": list(c.should_not),
                    "can": list(c.can),
                }
                for c in msg.categories
            ],
        },
        source="request policy",
    )


class JudgeRuntime(BatchedRuntime[JudgeEngine, JudgeSettings, RateJob | ProposeJob, Any]):
    def setup(self) -> None:
        super().setup()
        policy_file = self.settings.judge_policy
        self.default_policy = load_policy(policy_file) if policy_file else default_policy()
        self._policies = {p.name: p for p in (default_policy(), self.default_policy)}
        self.engine.category_reader(self.default_policy)  # a policy it cannot read fails now

    def run_batch(self, jobs: list[RateJob | ProposeJob]) -> list[Any]:
        """The batcher's model call. Rating jobs share one pass; each proposal runs alone. A
        failing group answers its own callers with the error (returned, not raised), so a
        proposal's failure never fails the ratings batched beside it."""
        results: list[Any] = [None] * len(jobs)
        rates = [i for i, j in enumerate(jobs) if isinstance(j, RateJob)]
        if rates:
            try:
                outputs: list[Any] = self.engine.rate(
                    [jobs[i] for i in rates], self.settings.judge_verdict_mode
                )
            except Exception as exc:
                outputs = [exc] * len(rates)
            for i, out in zip(rates, outputs, strict=True):
                results[i] = out
        for i, job in enumerate(jobs):
            if isinstance(job, ProposeJob):
                try:
                    results[i] = self.engine.propose(job)
                except Exception as exc:
                    results[i] = exc
        return results

    async def _submit(self, make_job: Any) -> Any:
        """Queue the job `make_job(cancelled)` builds and await its result; the job can see
        whether its caller went away."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.batcher.enqueue([make_job(future.done)], [future])
        try:
            result = await future
        except asyncio.CancelledError:
            future.cancel()
            raise
        if isinstance(result, BaseException):
            raise result
        return result

    # -- validation ----------------------------------------------------------------------

    def policy(self, choice: judge_pb2.PolicyChoice, categories: Sequence[str] = ()) -> Policy:
        which = choice.WhichOneof("choice")
        if which is None:
            policy = self.default_policy
        elif which == "name":
            if choice.name not in self._policies:
                raise InvalidInput(
                    f"unknown policy {choice.name!r}; this server knows "
                    f"{', '.join(sorted(self._policies))} (or send a custom policy)"
                )
            policy = self._policies[choice.name]
        else:
            policy = _policy_from_proto(choice.custom)
        if categories:  # judge against those categories only: the prompt lists just them
            codes = policy.check_codes(categories)
            policy = replace(
                policy, categories=tuple(c for c in policy.categories if c.code in codes)
            )
        return policy

    def _threshold(self, options: judge_pb2.RateOptions) -> float:
        if options.threshold == 0.0:
            return self.settings.judge_threshold
        if not 0.0 < options.threshold < 1.0:
            raise InvalidInput(f"threshold {options.threshold} must lie strictly between 0 and 1")
        return options.threshold

    def _check_prompt(self, prompt: str) -> None:
        check_prompt_size(prompt, self.settings.judge_max_prompt_chars)

    def _decode_sync(self, data: bytes) -> Image.Image:
        return decode_image(data, self.limits, draft_size=_DRAFT_SIZE)

    async def _decode(self, data: bytes) -> Image.Image:
        return await self.on_cpu_pool(self._decode_sync, data)

    # -- rating --------------------------------------------------------------------------

    def _verdict(self, out: RateOutput, policy: Policy, threshold: float) -> common_pb2.Verdict:
        scores = [
            common_pb2.CategoryScore(
                category=c.code,
                probability=out.p_unsafe * out.category_probs.get(c.code, 0.0),
                threshold=threshold,
                flagged=c.code == out.category,
            )
            for c in policy.categories
        ]
        return common_pb2.Verdict(
            rating=common_pb2.RATING_UNSAFE if out.unsafe else common_pb2.RATING_SAFE,
            category=out.category,
            probability=out.p_unsafe,
            rationale=out.rationale,
            scores=scores,
            model=self.engine.card.name,
            untrained=self.engine.card.untrained,
        )

    def _rate_setup(
        self, choice: judge_pb2.PolicyChoice, options: judge_pb2.RateOptions
    ) -> tuple[Policy, float]:
        policy = self.policy(choice, options.categories)
        self._check_prompt(self.engine.rate_prompt(policy))
        self.engine.category_reader(policy)
        return policy, self._threshold(options)

    async def _rate_image(
        self, image: Image.Image, policy: Policy, threshold: float, rationale: bool
    ) -> RateOutput:
        return await self._submit(
            lambda cancelled: RateJob(image, policy, threshold, rationale, cancelled)
        )

    async def rate(self, request: judge_pb2.RateRequest) -> judge_pb2.RateResponse:
        policy, threshold = self._rate_setup(request.policy, request.options)
        with self.admission.admit(1):
            image = await self._decode(request.image.data)
            out = await self._rate_image(image, policy, threshold, request.options.rationale)
        return judge_pb2.RateResponse(
            image_id=request.image.id,
            verdict=self._verdict(out, policy, threshold),
            prompt_version=self.engine.rate_template.tag,
        )

    async def rate_batch(self, request: judge_pb2.RateBatchRequest) -> judge_pb2.RateBatchResponse:
        images = request.images
        check_image_count(len(images), self.settings.max_images_per_request)
        policy, threshold = self._rate_setup(request.policy, request.options)
        rationale = request.options.rationale

        async def one(data: bytes) -> RateOutput:
            return await self._rate_image(await self._decode(data), policy, threshold, rationale)

        with self.admission.admit(len(images)):
            outcomes = await asyncio.gather(*(one(i.data) for i in images), return_exceptions=True)
        results = []
        for i, (img, outcome) in enumerate(zip(images, outcomes, strict=True)):
            if isinstance(outcome, SafetyPairsError):
                results.append(
                    judge_pb2.RateResult(image_id=img.id, error=item_error(outcome, i, img.id))
                )
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                verdict = self._verdict(outcome, policy, threshold)
                results.append(judge_pb2.RateResult(image_id=img.id, verdict=verdict))
        return judge_pb2.RateBatchResponse(
            results=results, prompt_version=self.engine.rate_template.tag
        )

    # -- proposals -----------------------------------------------------------------------

    async def propose_edits(
        self, request: judge_pb2.ProposeEditsRequest
    ) -> judge_pb2.ProposeEditsResponse:
        direction = _DIRECTIONS.get(request.direction)
        if direction is None:
            raise InvalidInput(
                "direction must be EDIT_DIRECTION_TO_SAFE or EDIT_DIRECTION_TO_UNSAFE"
            )
        limit = self.settings.judge_max_proposals
        if not 1 <= request.count <= limit:
            raise InvalidInput(f"count is {request.count}; it must lie in 1..{limit}")
        policy = self.policy(request.policy)
        if request.category:
            category = policy.category(request.category)
        elif direction == TO_UNSAFE:
            raise InvalidInput(
                "TO_UNSAFE needs the category the edit should make the image violate"
            )
        else:
            category = None
        if category is not None:
            self._check_prompt(self.engine.propose_prompt(policy, category, direction))
        with self.admission.admit(1):
            image = await self._decode(request.image.data)
            if category is None:  # to_safe without a category: the judge names it first
                self._check_prompt(self.engine.rate_prompt(policy))
                self.engine.category_reader(policy)
                rated = await self._rate_image(image, policy, 0.5, False)
                category = policy.category(
                    max(rated.category_probs, key=rated.category_probs.__getitem__)
                )
            chosen = category
            proposals: list[Proposal] = await self._submit(
                lambda cancelled: ProposeJob(
                    image, policy, chosen, direction, request.count, request.seed, cancelled
                )
            )
        card = self.engine.card
        return judge_pb2.ProposeEditsResponse(
            image_id=request.image.id,
            proposals=[
                judge_pb2.EditProposal(
                    instruction=p.instruction,
                    action=_ACTIONS[p.action],
                    element=p.element,
                    category=p.category,
                )
                for p in proposals
            ],
            model=card.name,
            untrained=card.untrained,
            prompt_version=self.engine.propose_template.tag,
        )

    # -- description ---------------------------------------------------------------------

    def list_categories(self) -> common_pb2.ListCategoriesResponse:
        return common_pb2.ListCategoriesResponse(
            categories=[c.to_proto() for c in self.default_policy.categories]
        )

    def model_info(self) -> judge_pb2.JudgeModelInfo:
        card, s = self.engine.card, self.settings
        return judge_pb2.JudgeModelInfo(
            name=card.name,
            reference=self.reference,
            architecture=card.architecture,
            dtype=card.dtype,
            device=card.device,
            untrained=card.untrained,
            notice=card.notice,
            prompt_versions=[self.engine.rate_template.tag, self.engine.propose_template.tag],
            verdict_mode=s.judge_verdict_mode,
            default_policy=f"{self.default_policy.name}@{self.default_policy.version}",
            max_batch_size=s.max_batch_size,
            max_proposals=s.judge_max_proposals,
            max_prompt_chars=s.judge_max_prompt_chars,
            runtime=f"transformers {transformers.__version__}, torch {torch.__version__}",
        )
