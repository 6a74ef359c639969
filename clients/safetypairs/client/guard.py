"""Typed clients for the Guard service, sync and async.

    with GuardClient("localhost:50051") as guard:
        verdict = guard.screen("photo.jpg")

Failed calls raise the project's exception classes (safetypairs.contract.errors), recovered from the
status code and the server's error-kind metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from safetypairs.client.base import AsyncClient, Call, ImageLike, SyncClient, image_message
from safetypairs.contract.policy import Category
from safetypairs.contract.results import ModelInfo, ScreenResult, Verdict
from safetypairs.v1 import common_pb2, guard_pb2, guard_pb2_grpc

SERVICE = guard_pb2.DESCRIPTOR.services_by_name["Guard"].full_name


def _options(
    categories: Sequence[str] | None, thresholds: Mapping[str, float] | None, member_details: bool
) -> guard_pb2.ScreenOptions:
    return guard_pb2.ScreenOptions(
        categories=categories or (), thresholds=thresholds or {}, member_details=member_details
    )


def _screen_call(
    image: ImageLike,
    image_id: str | None,
    categories: Sequence[str] | None,
    thresholds: Mapping[str, float] | None,
    member_details: bool,
) -> Call:
    request = guard_pb2.ScreenRequest(
        image=image_message(image, image_id),
        options=_options(categories, thresholds, member_details),
    )
    return Call("Screen", request, lambda r: Verdict.from_proto(r.verdict))


def _screen_batch_call(
    images: Iterable[ImageLike],
    image_ids: Sequence[str] | None,
    categories: Sequence[str] | None,
    thresholds: Mapping[str, float] | None,
    member_details: bool,
) -> Call:
    images = list(images)
    if image_ids is not None and len(image_ids) != len(images):
        raise ValueError(f"{len(image_ids)} image_ids for {len(images)} images")
    msgs = [image_message(img, image_ids[i] if image_ids else None) for i, img in enumerate(images)]
    options = _options(categories, thresholds, member_details)
    request = guard_pb2.ScreenBatchRequest(images=msgs, options=options)
    return Call("ScreenBatch", request, lambda r: [ScreenResult.from_proto(x) for x in r.results])


_LIST_CATEGORIES = Call(
    "ListCategories",
    common_pb2.ListCategoriesRequest(),
    lambda r: [Category.from_proto(c) for c in r.categories],
)
_MODEL_INFO = Call("GetModelInfo", common_pb2.GetModelInfoRequest(), ModelInfo.from_proto)


class GuardClient(SyncClient):
    """Blocking client."""

    _service = SERVICE
    _stub_class = guard_pb2_grpc.GuardStub

    def screen(
        self,
        image: ImageLike,
        *,
        image_id: str | None = None,
        categories: Sequence[str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        member_details: bool = False,
        timeout: float | None = None,
    ) -> Verdict:
        return self._run(
            _screen_call(image, image_id, categories, thresholds, member_details), timeout
        )

    def screen_batch(
        self,
        images: Iterable[ImageLike],
        *,
        image_ids: Sequence[str] | None = None,
        categories: Sequence[str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        member_details: bool = False,
        timeout: float | None = None,
    ) -> list[ScreenResult]:
        """One result per image; an image the server could not read carries `.error`."""
        return self._run(
            _screen_batch_call(images, image_ids, categories, thresholds, member_details), timeout
        )

    def list_categories(self, *, timeout: float | None = None) -> list[Category]:
        return self._run(_LIST_CATEGORIES, timeout)

    def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        return self._run(_MODEL_INFO, timeout)


class AsyncGuardClient(AsyncClient):
    """asyncio client with the same methods as GuardClient, as coroutines."""

    _service = SERVICE
    _stub_class = guard_pb2_grpc.GuardStub

    async def screen(
        self,
        image: ImageLike,
        *,
        image_id: str | None = None,
        categories: Sequence[str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        member_details: bool = False,
        timeout: float | None = None,
    ) -> Verdict:
        return await self._run(
            _screen_call(image, image_id, categories, thresholds, member_details), timeout
        )

    async def screen_batch(
        self,
        images: Iterable[ImageLike],
        *,
        image_ids: Sequence[str] | None = None,
        categories: Sequence[str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        member_details: bool = False,
        timeout: float | None = None,
    ) -> list[ScreenResult]:
        call = _screen_batch_call(images, image_ids, categories, thresholds, member_details)
        return await self._run(call, timeout)

    async def list_categories(self, *, timeout: float | None = None) -> list[Category]:
        return await self._run(_LIST_CATEGORIES, timeout)

    async def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        return await self._run(_MODEL_INFO, timeout)
