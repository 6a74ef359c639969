"""The edit service's request handling, shared by the gRPC servicer and the HTTP API.

A request is checked and its images decoded in a thread pool before it asks for a model slot,
so bad input fails at once and never holds the model. At most `edit_concurrency` edits run
per replica and `edit_queue` wait; more are refused (Overloaded). A cancelled request (client
gone, deadline passed) stops its edit after the current step and frees its slot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import math
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from safetypairs.contract.errors import InvalidInput, SafetyPairsError, Unavailable
from safetypairs.contract.images import decode_image
from safetypairs.edit.changes import change_map
from safetypairs.edit.default_model import ensure_default_editor
from safetypairs.edit.engine import EditEngine, EditJob
from safetypairs.serving.model_refs import configured_model
from safetypairs.serving.runtime_skeleton import ServiceRuntime
from safetypairs.serving.settings import EditSettings
from safetypairs.serving.slots import Slots
from safetypairs.serving.torch_env import quiet_torchvision_fallback, set_threads
from safetypairs.v1 import common_pb2, edit_pb2

_MIME = {edit_pb2.OUTPUT_FORMAT_PNG: "image/png", edit_pb2.OUTPUT_FORMAT_WEBP: "image/webp"}


@dataclass(frozen=True)
class _Params:
    instruction: str
    negative_prompt: str
    seed: int
    steps: int
    guidance_scale: float
    image_guidance_scale: float | None
    change_threshold: int
    format: int


@dataclass(frozen=True)
class _Prepared:
    source: Image.Image  # RGB at the working size
    area: np.ndarray | None  # (H, W) bool where the edit may act; None = everywhere


def load_configured_editor(settings: EditSettings) -> tuple[EditEngine, str]:
    """The engine for the settings' model (the embedded default when none is set) and the
    reference it was loaded from."""
    set_threads(settings.torch_threads)
    quiet_torchvision_fallback()
    path, reference = configured_model(
        settings.edit_model, lambda: ensure_default_editor(settings.home_dir())
    )
    engine = EditEngine.load(
        path,
        pipeline=settings.edit_pipeline,
        device=settings.edit_device,
        dtype=settings.edit_dtype,
        scheduler=settings.edit_scheduler,
        attention_backend=settings.edit_attention_backend,
        compile=settings.edit_compile,
    )
    return engine, reference


def _encode(img: Image.Image, fmt: int) -> bytes:
    buf = io.BytesIO()
    if fmt == edit_pb2.OUTPUT_FORMAT_WEBP:
        img.save(buf, format="WEBP", lossless=True)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


class EditRuntime(ServiceRuntime[EditEngine, EditSettings]):
    def setup(self) -> None:
        super().setup()
        concurrency = self.settings.edit_concurrency
        self.slots = Slots(concurrency, self.settings.edit_queue)
        self._model = concurrent.futures.ThreadPoolExecutor(
            concurrency, thread_name_prefix="edit-model"
        )

    async def stop(self) -> None:
        self._accepting = False
        self._model.shutdown(wait=True)
        await super().stop()

    # -- checks ---------------------------------------------------------------------------

    def _params(self, request: edit_pb2.EditRequest) -> _Params:
        s, family, opts = self.settings, self.engine.family, request.options
        instruction = request.instruction.strip()
        if not instruction:
            raise InvalidInput("instruction is empty; say what to change, e.g. 'remove the knife'")
        for name, text in (("instruction", instruction), ("negative_prompt", opts.negative_prompt)):
            if len(text) > s.edit_max_instruction_chars:
                raise InvalidInput(
                    f"{name} is {len(text)} characters, over the limit of "
                    f"{s.edit_max_instruction_chars}"
                )
        steps = opts.steps if opts.HasField("steps") else s.edit_steps or family.steps
        if not 1 <= steps <= s.edit_max_steps:
            raise InvalidInput(f"steps is {steps}; it must lie in 1..{s.edit_max_steps}")
        guidance = (
            opts.guidance_scale
            if opts.HasField("guidance_scale")
            else s.edit_guidance_scale or family.guidance_scale
        )
        self._check_scale("guidance_scale", guidance)
        image_guidance = None
        if family.image_guidance:
            image_guidance = (
                opts.image_guidance_scale
                if opts.HasField("image_guidance_scale")
                else s.edit_image_guidance_scale
            )
            self._check_scale("image_guidance_scale", image_guidance)
        elif opts.HasField("image_guidance_scale"):
            raise InvalidInput(
                f"image_guidance_scale applies to InstructPix2Pix only; this model runs "
                f"{family.pipeline}"
            )
        threshold = (
            opts.change_threshold if opts.HasField("change_threshold") else s.edit_change_threshold
        )
        if not 0 <= threshold <= 255:
            raise InvalidInput(f"change_threshold is {threshold}; it must lie in 0..255")
        if opts.format not in (edit_pb2.OUTPUT_FORMAT_UNSPECIFIED, *_MIME):
            raise InvalidInput(f"unknown output format {opts.format}; use PNG or WEBP")
        return _Params(
            instruction=instruction,
            negative_prompt=opts.negative_prompt,
            seed=request.seed if request.HasField("seed") else secrets.randbits(63),
            steps=steps,
            guidance_scale=guidance,
            image_guidance_scale=image_guidance,
            change_threshold=threshold,
            format=opts.format or edit_pb2.OUTPUT_FORMAT_PNG,
        )

    def _check_scale(self, name: str, value: float) -> None:
        top = self.settings.edit_max_guidance_scale
        if not (math.isfinite(value) and 0.0 <= value <= top):
            raise InvalidInput(f"{name} is {value}; it must lie in [0, {top}]")

    def _prepare(self, request: edit_pb2.EditRequest) -> _Prepared:
        """Decode the image (and mask), bring both to the working size (thread pool)."""
        source = decode_image(request.image.data, self.limits)
        size = self.engine.working_size(*source.size, self.settings.edit_max_pixels)
        allowed = self._allowed_area(request, source.size)
        area = None
        if allowed is not None:
            mask = Image.fromarray(allowed).resize(size, Image.Resampling.NEAREST)
            area = np.asarray(mask)
            if not area.any():
                raise InvalidInput(
                    f"the mask or region leaves no pixel to edit at the working size "
                    f"{size[0]}x{size[1]}"
                )
        if source.size != size:
            source = source.resize(size, Image.Resampling.LANCZOS)
        return _Prepared(source, area)

    def _allowed_area(
        self, request: edit_pb2.EditRequest, size: tuple[int, int]
    ) -> np.ndarray | None:
        """The source-sized bool mask of where the edit may act, from the mask or region."""
        width, height = size
        which = request.WhichOneof("area")
        if which == "mask":
            try:
                mask = decode_image(request.mask.data, self.limits)
            except SafetyPairsError as exc:
                raise type(exc)(f"mask: {exc.message}") from None
            if mask.size != size:
                raise InvalidInput(
                    f"mask is {mask.width}x{mask.height}; it must match the image's "
                    f"{width}x{height}"
                )
            return np.asarray(mask.convert("L")) >= 128
        if which == "region":
            r = request.region
            if r.width < 1 or r.height < 1 or r.x < 0 or r.y < 0:
                raise InvalidInput(
                    f"region x={r.x} y={r.y} {r.width}x{r.height} must have a positive size "
                    "and a non-negative corner"
                )
            if r.x + r.width > width or r.y + r.height > height:
                raise InvalidInput(
                    f"region x={r.x} y={r.y} {r.width}x{r.height} reaches outside the "
                    f"{width}x{height} image"
                )
            area = np.zeros((height, width), dtype=bool)
            area[r.y : r.y + r.height, r.x : r.x + r.width] = True
            return area
        return None

    # -- editing --------------------------------------------------------------------------

    async def edit(
        self,
        request: edit_pb2.EditRequest,
        on_progress: Callable[[edit_pb2.EditProgress], None] | None = None,
    ) -> edit_pb2.EditResponse:
        """One edit. `on_progress` (called on the event loop) hears step 0 when the edit gets
        its slot and every finished step after."""
        if not self.ready:
            raise Unavailable("the edit service is starting or shutting down; retry")
        params = self._params(request)
        loop = asyncio.get_running_loop()
        prepared = await self.on_cpu_pool(self._prepare, request)
        job = EditJob(
            image=prepared.source,
            instruction=params.instruction,
            seed=params.seed,
            steps=params.steps,
            guidance_scale=params.guidance_scale,
            image_guidance_scale=params.image_guidance_scale,
            negative_prompt=params.negative_prompt,
        )
        async with self.slots.hold():
            self.metrics.queue_depth(self.slots.waiting)
            started = time.perf_counter()

            def progress(step: int, total: int) -> None:  # model thread -> event loop
                if on_progress is not None:
                    msg = edit_pb2.EditProgress(
                        step=step, total=total, elapsed_s=time.perf_counter() - started
                    )
                    loop.call_soon_threadsafe(on_progress, msg)

            progress(0, params.steps)
            cancel = threading.Event()
            running = loop.run_in_executor(
                self._model, self.engine.edit, job, progress, cancel.is_set
            )
            try:
                output = await asyncio.shield(running)
            except asyncio.CancelledError:
                # The model thread stops at its next step; the slot is free only then, so a
                # new edit never shares the device with an abandoned one.
                cancel.set()
                await asyncio.wait([running])
                raise
            finally:
                self.metrics.queue_depth(self.slots.waiting)
            seconds = time.perf_counter() - started
        self.metrics.batch_done(1, seconds)
        return await self.on_cpu_pool(self._answer, request, params, prepared, output, seconds)

    def _answer(
        self,
        request: edit_pb2.EditRequest,
        params: _Params,
        prepared: _Prepared,
        output: Image.Image,
        seconds: float,
    ) -> edit_pb2.EditResponse:
        """Keep the source outside the allowed area, measure the change, encode (thread pool)."""
        source = np.asarray(prepared.source)
        pixels = np.asarray(output)
        if prepared.area is not None:
            pixels = np.where(prepared.area[..., None], pixels, source)
            output = Image.fromarray(pixels)
        change = change_map(source, pixels, params.change_threshold, prepared.area)
        x, y, w, h = change.bbox or (0, 0, 0, 0)
        engine, card = self.engine, self.engine.card
        return edit_pb2.EditResponse(
            image_id=request.image.id,
            image=common_pb2.Image(data=_encode(output, params.format), id=request.image.id),
            mime_type=_MIME[params.format],
            width=output.width,
            height=output.height,
            seed=params.seed,
            steps=params.steps,
            guidance_scale=params.guidance_scale,
            image_guidance_scale=params.image_guidance_scale or 0.0,
            model=f"{card.name}:{card.version}" if card.version else card.name,
            pipeline=engine.family.pipeline,
            untrained=card.untrained,
            change=edit_pb2.ChangeMap(
                map=common_pb2.Image(
                    data=_encode(Image.fromarray(change.diff, "L"), edit_pb2.OUTPUT_FORMAT_PNG)
                ),
                bbox=edit_pb2.Region(x=x, y=y, width=w, height=h),
                changed_fraction=change.changed_fraction,
                threshold=change.threshold,
                max_diff_outside=change.max_diff_outside,
            ),
            seconds=seconds,
        )

    async def edit_events(self, request: edit_pb2.EditRequest) -> AsyncIterator[edit_pb2.EditEvent]:
        """The edit as events: progress, then the result. Closing the iterator early (client
        gone) cancels the edit."""
        events: asyncio.Queue[edit_pb2.EditProgress | None] = asyncio.Queue()
        task = asyncio.ensure_future(self.edit(request, events.put_nowait))
        # Progress posted from the model thread is queued before the task finishes, so the
        # end marker comes last.
        task.add_done_callback(lambda _: events.put_nowait(None))
        try:
            while (progress := await events.get()) is not None:
                yield edit_pb2.EditEvent(progress=progress)
            yield edit_pb2.EditEvent(result=task.result())
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait([task])

    # -- description ----------------------------------------------------------------------

    def model_info(self) -> edit_pb2.EditModelInfo:
        import diffusers
        import torch

        engine, card, s = self.engine, self.engine.card, self.settings
        family = engine.family
        return edit_pb2.EditModelInfo(
            name=card.name,
            version=card.version,
            description=card.description,
            untrained=card.untrained,
            notice=card.notice,
            pipeline=family.pipeline,
            reference=self.reference,
            runtime=f"diffusers {diffusers.__version__}, torch {torch.__version__}",
            device=engine.device,
            dtype=str(engine.dtype).removeprefix("torch."),
            scheduler=engine.scheduler,
            attention_backend=engine.attention_backend,
            compiled=engine.compiled,
            default_steps=s.edit_steps or family.steps,
            default_guidance_scale=s.edit_guidance_scale or family.guidance_scale,
            default_image_guidance_scale=s.edit_image_guidance_scale
            if family.image_guidance
            else 0,
            max_steps=s.edit_max_steps,
            max_guidance_scale=s.edit_max_guidance_scale,
            max_instruction_chars=s.edit_max_instruction_chars,
            size_multiple=engine.size_multiple,
            max_edit_pixels=s.edit_max_pixels,
            max_image_bytes=s.max_image_bytes,
            max_image_pixels=s.max_image_pixels,
            concurrency=s.edit_concurrency,
            queue=s.edit_queue,
        )
