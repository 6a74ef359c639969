"""Typed clients for the Judge service, sync and async.

    with JudgeClient("localhost:50052") as judge:
        rated = judge.rate("photo.jpg", rationale=True)
        ideas = judge.propose_edits("photo.jpg", "to_unsafe", category="O6", count=4)

`policy` is a Policy (custom, sent whole), the name of a policy the server knows, or None for
the server's default. Failed calls raise the project's exception classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from safetypairs.client.base import AsyncClient, Call, ImageLike, SyncClient, image_message
from safetypairs.contract.policy import Category, Policy
from safetypairs.contract.results import JudgeModelInfo, Proposals, Rated
from safetypairs.v1 import common_pb2, judge_pb2, judge_pb2_grpc

SERVICE = judge_pb2.DESCRIPTOR.services_by_name["Judge"].full_name
DIRECTIONS = {
    "to_safe": judge_pb2.EDIT_DIRECTION_TO_SAFE,
    "to_unsafe": judge_pb2.EDIT_DIRECTION_TO_UNSAFE,
}

PolicyLike = Policy | str | None


def policy_choice(policy: PolicyLike) -> judge_pb2.PolicyChoice:
    if policy is None:
        return judge_pb2.PolicyChoice()
    if isinstance(policy, str):
        return judge_pb2.PolicyChoice(name=policy)
    return judge_pb2.PolicyChoice(custom=policy.to_proto())


def _rate_call(
    image: ImageLike,
    image_id: str | None,
    policy: PolicyLike,
    categories: Sequence[str] | None,
    rationale: bool,
    threshold: float | None,
) -> Call:
    request = judge_pb2.RateRequest(
        image=image_message(image, image_id),
        policy=policy_choice(policy),
        options=judge_pb2.RateOptions(
            categories=categories or (), rationale=rationale, threshold=threshold or 0.0
        ),
    )
    return Call("Rate", request, lambda r: Rated.from_proto(r, r.prompt_version))


def _rate_batch_call(
    images: Iterable[ImageLike],
    image_ids: Sequence[str] | None,
    policy: PolicyLike,
    categories: Sequence[str] | None,
    rationale: bool,
    threshold: float | None,
) -> Call:
    images = list(images)
    if image_ids is not None and len(image_ids) != len(images):
        raise ValueError(f"{len(image_ids)} image_ids for {len(images)} images")
    request = judge_pb2.RateBatchRequest(
        images=[
            image_message(x, image_ids[i] if image_ids else None) for i, x in enumerate(images)
        ],
        policy=policy_choice(policy),
        options=judge_pb2.RateOptions(
            categories=categories or (), rationale=rationale, threshold=threshold or 0.0
        ),
    )
    return Call(
        "RateBatch",
        request,
        lambda r: [Rated.from_proto(x, r.prompt_version) for x in r.results],
    )


def _propose_call(
    image: ImageLike,
    direction: str,
    category: str,
    count: int,
    seed: int,
    policy: PolicyLike,
    image_id: str | None,
) -> Call:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} must be one of {', '.join(DIRECTIONS)}")
    request = judge_pb2.ProposeEditsRequest(
        image=image_message(image, image_id),
        policy=policy_choice(policy),
        direction=DIRECTIONS[direction],
        category=category,
        count=count,
        seed=seed,
    )
    return Call("ProposeEdits", request, Proposals.from_proto)


_LIST_CATEGORIES = Call(
    "ListCategories",
    common_pb2.ListCategoriesRequest(),
    lambda r: [Category.from_proto(c) for c in r.categories],
)
_MODEL_INFO = Call("GetModelInfo", common_pb2.GetModelInfoRequest(), JudgeModelInfo.from_proto)


class JudgeClient(SyncClient):
    """Blocking client. Judge calls take far longer than guard calls: the default deadline is
    60 s."""

    _service = SERVICE
    _stub_class = judge_pb2_grpc.JudgeStub

    def __init__(self, target: str = "localhost:50052", *, timeout: float | None = 60.0, **kw):
        super().__init__(target, timeout=timeout, **kw)

    def rate(
        self,
        image: ImageLike,
        *,
        image_id: str | None = None,
        policy: PolicyLike = None,
        categories: Sequence[str] | None = None,
        rationale: bool = False,
        threshold: float | None = None,
        timeout: float | None = None,
    ) -> Rated:
        call = _rate_call(image, image_id, policy, categories, rationale, threshold)
        return self._run(call, timeout)

    def rate_batch(
        self,
        images: Iterable[ImageLike],
        *,
        image_ids: Sequence[str] | None = None,
        policy: PolicyLike = None,
        categories: Sequence[str] | None = None,
        rationale: bool = False,
        threshold: float | None = None,
        timeout: float | None = None,
    ) -> list[Rated]:
        """One answer per image; an image the server could not read carries `.error`."""
        call = _rate_batch_call(images, image_ids, policy, categories, rationale, threshold)
        return self._run(call, timeout)

    def propose_edits(
        self,
        image: ImageLike,
        direction: str,
        *,
        category: str = "",
        count: int = 4,
        seed: int = 0,
        policy: PolicyLike = None,
        image_id: str | None = None,
        timeout: float | None = None,
    ) -> Proposals:
        """`direction` is "to_safe" or "to_unsafe" (which needs `category`)."""
        call = _propose_call(image, direction, category, count, seed, policy, image_id)
        return self._run(call, timeout)

    def list_categories(self, *, timeout: float | None = None) -> list[Category]:
        return self._run(_LIST_CATEGORIES, timeout)

    def model_info(self, *, timeout: float | None = None) -> JudgeModelInfo:
        return self._run(_MODEL_INFO, timeout)


class AsyncJudgeClient(AsyncClient):
    """asyncio client with the same methods as JudgeClient, as coroutines."""

    _service = SERVICE
    _stub_class = judge_pb2_grpc.JudgeStub

    def __init__(self, target: str = "localhost:50052", *, timeout: float | None = 60.0, **kw):
        super().__init__(target, timeout=timeout, **kw)

    async def rate(
        self,
        image: ImageLike,
        *,
        image_id: str | None = None,
        policy: PolicyLike = None,
        categories: Sequence[str] | None = None,
        rationale: bool = False,
        threshold: float | None = None,
        timeout: float | None = None,
    ) -> Rated:
        call = _rate_call(image, image_id, policy, categories, rationale, threshold)
        return await self._run(call, timeout)

    async def rate_batch(
        self,
        images: Iterable[ImageLike],
        *,
        image_ids: Sequence[str] | None = None,
        policy: PolicyLike = None,
        categories: Sequence[str] | None = None,
        rationale: bool = False,
        threshold: float | None = None,
        timeout: float | None = None,
    ) -> list[Rated]:
        call = _rate_batch_call(images, image_ids, policy, categories, rationale, threshold)
        return await self._run(call, timeout)

    async def propose_edits(
        self,
        image: ImageLike,
        direction: str,
        *,
        category: str = "",
        count: int = 4,
        seed: int = 0,
        policy: PolicyLike = None,
        image_id: str | None = None,
        timeout: float | None = None,
    ) -> Proposals:
        call = _propose_call(image, direction, category, count, seed, policy, image_id)
        return await self._run(call, timeout)

    async def list_categories(self, *, timeout: float | None = None) -> list[Category]:
        return await self._run(_LIST_CATEGORIES, timeout)

    async def model_info(self, *, timeout: float | None = None) -> JudgeModelInfo:
        return await self._run(_MODEL_INFO, timeout)
