"""Typed clients for the Guard service, sync and async.

    with GuardClient("localhost:50051") as guard:
        verdict = guard.screen("photo.jpg")

Failed calls raise the project's exception classes (safetypairs.errors), recovered from the
status code and the server's error-kind metadata.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import grpc
from google.protobuf.message import Message

from safetypairs.client.channel import ChannelOptions, open_channel
from safetypairs.client.results import ModelInfo, ScreenResult, Verdict
from safetypairs.errors import ERROR_KIND_METADATA_KEY, SafetyPairsError, error_class
from safetypairs.policy import Category
from safetypairs.v1 import common_pb2, guard_pb2, guard_pb2_grpc

DEFAULT_OPTIONS = ChannelOptions()
SERVICE = guard_pb2.DESCRIPTOR.services_by_name["Guard"].full_name

ImageLike = bytes | str | os.PathLike[str]


def image_message(image: ImageLike, image_id: str | None = None) -> common_pb2.Image:
    """Bytes are sent as they are; a path is read (its name becomes the default id)."""
    if isinstance(image, bytes | bytearray | memoryview):
        return common_pb2.Image(data=bytes(image), id=image_id or "")
    path = Path(image)
    return common_pb2.Image(
        data=path.read_bytes(), id=image_id if image_id is not None else str(path)
    )


def _options(
    categories: Sequence[str] | None, thresholds: Mapping[str, float] | None, member_details: bool
) -> guard_pb2.ScreenOptions:
    return guard_pb2.ScreenOptions(
        categories=categories or (), thresholds=thresholds or {}, member_details=member_details
    )


@dataclass(frozen=True)
class _Call:
    """One RPC, protocol-neutral: which stub method, the request, how to read the answer.
    The sync and async clients differ only in how they run it."""

    method: str
    request: Message
    parse: Callable[[Any], Any]


def _screen_call(
    image: ImageLike,
    image_id: str | None,
    categories: Sequence[str] | None,
    thresholds: Mapping[str, float] | None,
    member_details: bool,
) -> _Call:
    request = guard_pb2.ScreenRequest(
        image=image_message(image, image_id),
        options=_options(categories, thresholds, member_details),
    )
    return _Call("Screen", request, lambda r: Verdict.from_proto(r.verdict))


def _screen_batch_call(
    images: Iterable[ImageLike],
    image_ids: Sequence[str] | None,
    categories: Sequence[str] | None,
    thresholds: Mapping[str, float] | None,
    member_details: bool,
) -> _Call:
    images = list(images)
    if image_ids is not None and len(image_ids) != len(images):
        raise ValueError(f"{len(image_ids)} image_ids for {len(images)} images")
    msgs = [image_message(img, image_ids[i] if image_ids else None) for i, img in enumerate(images)]
    options = _options(categories, thresholds, member_details)
    request = guard_pb2.ScreenBatchRequest(images=msgs, options=options)
    return _Call("ScreenBatch", request, lambda r: [ScreenResult.from_proto(x) for x in r.results])


_LIST_CATEGORIES = _Call(
    "ListCategories",
    common_pb2.ListCategoriesRequest(),
    lambda r: [Category.from_proto(c) for c in r.categories],
)
_MODEL_INFO = _Call("GetModelInfo", common_pb2.GetModelInfoRequest(), ModelInfo.from_proto)


def error_from_rpc(exc: grpc.RpcError) -> SafetyPairsError:
    """The project exception for a failed call (the RpcError stays as its __cause__)."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    kind = None
    if hasattr(exc, "trailing_metadata"):
        for key, value in exc.trailing_metadata() or ():
            if key == ERROR_KIND_METADATA_KEY:
                kind = value
    cls = error_class(kind, code)
    message = details or ""
    if cls is SafetyPairsError and code is not None:
        message = f"{code.name}: {message}"
    err = cls(message)
    err.__cause__ = exc
    return err


class _GuardClientBase:
    """`timeout` is the default deadline per call in seconds; `metadata` goes with every call;
    `token` is sent as `authorization: Bearer <token>`; `credentials` (see `tls_credentials`)
    make the channel TLS."""

    _aio: ClassVar[bool]

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        timeout: float | None = 10.0,
        options: ChannelOptions = DEFAULT_OPTIONS,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        token: str | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._metadata = tuple(metadata) + (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._channel = open_channel(
            target, [SERVICE], options, credentials=credentials, aio=self._aio
        )
        self._stub = guard_pb2_grpc.GuardStub(self._channel)

    def _invoke(self, call: _Call, timeout: float | None) -> Any:
        method = getattr(self._stub, call.method)
        deadline = self.timeout if timeout is None else timeout
        return method(call.request, timeout=deadline, metadata=self._metadata)


class GuardClient(_GuardClientBase):
    """Blocking client."""

    _aio = False

    def _run(self, call: _Call, timeout: float | None) -> Any:
        try:
            return call.parse(self._invoke(call, timeout))
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

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

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GuardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGuardClient(_GuardClientBase):
    """asyncio client with the same methods as GuardClient, as coroutines."""

    _aio = True

    async def _run(self, call: _Call, timeout: float | None) -> Any:
        try:
            return call.parse(await self._invoke(call, timeout))
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

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

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncGuardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
