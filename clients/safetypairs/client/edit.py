"""Typed clients for the Edit service, sync and async.

    with EditClient("localhost:50053") as editor:
        result = editor.edit("photo.jpg", "remove the knife", seed=7,
                             on_progress=lambda p: print(p.step, "/", p.total))
        result.save("edited.png")

`edit` waits for the image (with `on_progress`, over the streaming RPC); `edit_stream` yields
EditProgress events and then the EditResult. Leaving the stream early cancels the edit on the
server, which frees its slot. Failed calls raise safetypairs.contract.errors classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from safetypairs.client.base import (
    AsyncClient,
    Call,
    ImageLike,
    SyncClient,
    error_from_rpc,
    image_message,
)
from safetypairs.contract.edit_request import edit_request as build_edit_request
from safetypairs.contract.results import _from_fields
from safetypairs.v1 import common_pb2, edit_pb2, edit_pb2_grpc

SERVICE = edit_pb2.DESCRIPTOR.services_by_name["Edit"].full_name
DEFAULT_TARGET = "localhost:50053"
DEFAULT_TIMEOUT_S = 600.0  # an edit on a large model takes tens of seconds, queueing included


@dataclass(frozen=True)
class Region:
    """A rectangle in pixels: x, y its top-left corner."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class ChangeMap:
    """Where the output differs from the source (at the output's size)."""

    map_png: bytes  # greyscale PNG: per pixel the max |difference| over R, G, B
    bbox: Region | None  # of the pixels over the threshold; None when nothing changed
    changed_fraction: float
    threshold: int
    max_diff_outside: int  # outside the mask/region asked for; 0 = nothing there moved


@dataclass(frozen=True)
class EditResult:
    image_id: str
    image: bytes  # encoded PNG or WebP
    mime_type: str
    width: int
    height: int
    seed: int
    steps: int
    guidance_scale: float
    image_guidance_scale: float
    model: str
    pipeline: str
    untrained: bool  # random weights: the pixels are no edit of anything
    change: ChangeMap
    seconds: float

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.image)
        return path

    @classmethod
    def from_proto(cls, msg: edit_pb2.EditResponse) -> EditResult:
        c = msg.change
        bbox = Region(c.bbox.x, c.bbox.y, c.bbox.width, c.bbox.height) if c.bbox.width else None
        return cls(
            image_id=msg.image_id,
            image=msg.image.data,
            mime_type=msg.mime_type,
            width=msg.width,
            height=msg.height,
            seed=msg.seed,
            steps=msg.steps,
            guidance_scale=msg.guidance_scale,
            image_guidance_scale=msg.image_guidance_scale,
            model=msg.model,
            pipeline=msg.pipeline,
            untrained=msg.untrained,
            change=ChangeMap(c.map.data, bbox, c.changed_fraction, c.threshold, c.max_diff_outside),
            seconds=msg.seconds,
        )


@dataclass(frozen=True)
class EditProgress:
    step: int  # steps done; 0 when the edit got its slot
    total: int
    elapsed_s: float


@dataclass(frozen=True)
class EditModelInfo:
    name: str
    version: str
    description: str
    untrained: bool
    notice: str
    pipeline: str
    reference: str
    runtime: str
    device: str
    dtype: str
    scheduler: str
    attention_backend: str
    compiled: bool
    default_steps: int
    default_guidance_scale: float
    default_image_guidance_scale: float
    max_steps: int
    max_guidance_scale: float
    max_instruction_chars: int
    size_multiple: int
    max_edit_pixels: int
    max_image_bytes: int
    max_image_pixels: int
    concurrency: int
    queue: int

    @classmethod
    def from_proto(cls, msg: edit_pb2.EditModelInfo) -> EditModelInfo:
        return _from_fields(cls, msg)


def _event(msg: edit_pb2.EditEvent) -> EditProgress | EditResult:
    if msg.WhichOneof("event") == "result":
        return EditResult.from_proto(msg.result)
    p = msg.progress
    return EditProgress(p.step, p.total, p.elapsed_s)


def edit_request(
    image: ImageLike,
    instruction: str,
    *,
    image_id: str | None = None,
    mask: ImageLike | None = None,
    region: Region | tuple[int, int, int, int] | None = None,
    **options: Any,
) -> edit_pb2.EditRequest:
    """The request message; options (seed, steps, guidance_scale, image_guidance_scale,
    negative_prompt, format, change_threshold) left out take the server's defaults."""
    if isinstance(region, Region):
        region = (region.x, region.y, region.width, region.height)
    return build_edit_request(
        image=image_message(image, image_id),
        instruction=instruction,
        mask=image_message(mask, "").data if mask is not None else None,
        region=region,
        **options,
    )


_MODEL_INFO = Call("GetModelInfo", common_pb2.GetModelInfoRequest(), EditModelInfo.from_proto)


class EditClient(SyncClient):
    """Blocking client. Keyword arguments of `edit`/`edit_stream` are those of `edit_request`."""

    _service = SERVICE
    _stub_class = edit_pb2_grpc.EditStub

    def __init__(
        self, target: str = DEFAULT_TARGET, *, timeout: float | None = DEFAULT_TIMEOUT_S, **kw: Any
    ) -> None:
        super().__init__(target, timeout=timeout, **kw)

    def edit(
        self,
        image: ImageLike,
        instruction: str,
        *,
        on_progress: Callable[[EditProgress], None] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> EditResult:
        request = edit_request(image, instruction, **options)
        if on_progress is None:
            return self._run(Call("Edit", request, EditResult.from_proto), timeout)
        for event in self._stream(request, timeout):
            if isinstance(event, EditResult):
                return event
            on_progress(event)
        raise RuntimeError("the stream ended without a result")  # the server always sends one

    def edit_stream(
        self, image: ImageLike, instruction: str, *, timeout: float | None = None, **options: Any
    ) -> Iterator[EditProgress | EditResult]:
        return self._stream(edit_request(image, instruction, **options), timeout)

    def _stream(
        self, request: edit_pb2.EditRequest, timeout: float | None
    ) -> Iterator[EditProgress | EditResult]:
        call = self._stub.EditStream(
            request,
            timeout=self.timeout if timeout is None else timeout,
            metadata=self._call_metadata(),
        )
        try:
            for msg in call:
                yield _event(msg)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()  # a no-op when it ended; else the server stops the edit

    def model_info(self, *, timeout: float | None = None) -> EditModelInfo:
        return self._run(_MODEL_INFO, timeout)


class AsyncEditClient(AsyncClient):
    """asyncio client with the same methods as EditClient; `edit_stream` is an async iterator."""

    _service = SERVICE
    _stub_class = edit_pb2_grpc.EditStub

    def __init__(
        self, target: str = DEFAULT_TARGET, *, timeout: float | None = DEFAULT_TIMEOUT_S, **kw: Any
    ) -> None:
        super().__init__(target, timeout=timeout, **kw)

    async def edit(
        self,
        image: ImageLike,
        instruction: str,
        *,
        on_progress: Callable[[EditProgress], None] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> EditResult:
        request = edit_request(image, instruction, **options)
        if on_progress is None:
            return await self._run(Call("Edit", request, EditResult.from_proto), timeout)
        async for event in self._stream(request, timeout):
            if isinstance(event, EditResult):
                return event
            on_progress(event)
        raise RuntimeError("the stream ended without a result")  # the server always sends one

    def edit_stream(
        self, image: ImageLike, instruction: str, *, timeout: float | None = None, **options: Any
    ) -> AsyncIterator[EditProgress | EditResult]:
        return self._stream(edit_request(image, instruction, **options), timeout)

    async def _stream(
        self, request: edit_pb2.EditRequest, timeout: float | None
    ) -> AsyncIterator[EditProgress | EditResult]:
        call = self._stub.EditStream(
            request,
            timeout=self.timeout if timeout is None else timeout,
            metadata=self._call_metadata(),
        )
        try:
            async for msg in call:
                yield _event(msg)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    async def model_info(self, *, timeout: float | None = None) -> EditModelInfo:
        return await self._run(_MODEL_INFO, timeout)
