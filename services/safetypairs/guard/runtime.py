"""The guard's request handling, shared by the gRPC servicer and the HTTP API.

Requests and answers are the contract's messages (safetypairs.v1); the protocols only carry
them. Images are decoded and preprocessed per request in a thread pool (one thread per usable
core), so a bad image fails alone before it can join a batch. Where batching pays (measured at
start-up, batching.py) good images meet other requests in the micro-batcher; where it does not
(a CPU) the same thread runs the model on its image at once, requests side by side, one per
core, with no hand-over to the batcher's thread. A request whose image is the only one in the
service takes the decoder, resize and model session that are fastest alone (docs/guard.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from safetypairs.contract.errors import InvalidInput, SafetyPairsError, item_error
from safetypairs.contract.images import decode_image
from safetypairs.guard.batching import BatchPolicy, choose
from safetypairs.guard.outputs import GuardModel, ItemOutput
from safetypairs.guard.resize import Beside
from safetypairs.serving.admission import check_image_count
from safetypairs.serving.batcher import deliver_threadsafe, resolve_threadsafe
from safetypairs.serving.runtime_skeleton import BatchedRuntime
from safetypairs.serving.settings import GuardSettings
from safetypairs.v1 import common_pb2, guard_pb2


@dataclass(frozen=True)
class _Options:
    member_details: bool
    codes: tuple[str, ...]  # categories to answer, in order
    covered: tuple[str, ...]  # those the model has an output column for, in the same order
    columns: np.ndarray  # output column of each covered code
    thresholds: np.ndarray  # threshold of each covered code


class GuardRuntime(BatchedRuntime[GuardModel, GuardSettings, Any, ItemOutput]):
    def setup(self) -> None:
        s = self.settings
        self.batching: BatchPolicy = choose(self.engine, s.batching, s.max_batch_size)
        if s.ort_spin_alone and not self.batching.batches:  # calls can run alone
            self.engine.open_alone_session()
        # A call alone shares its resize with the request threads, idle then.
        self._beside = Beside(self.cpu_pool, self.cpu_threads)
        super().setup()
        card = self.engine.card
        self._column = {code: i for i, code in enumerate(card.categories)}
        self._default = self._resolve((), {}, False)
        self._model = f"{card.name}:{card.version}"

    def batch_limit(self) -> int:
        return self.batching.max_batch_size

    def run_batch(self, batch: list[Any], *, alone: bool = False) -> list[ItemOutput]:
        """The batcher's model call; records each ensemble member's time once per batch."""
        outputs = self.engine.run(batch, alone=alone)
        for member in outputs[0].members if outputs else ():
            self.metrics.member_done(member.name, member.seconds)
        return outputs

    def _run_unbatched(self, data: bytes) -> ItemOutput:
        """Request thread, no batching: decode, preprocess and run the model on one image. The
        only image in the service (asked before decoding and again before the model run: a
        call that came in meanwhile makes it one of several) takes the decoder, the banded
        resize and the model session that are fastest alone but would cost the calls beside
        it."""
        x = self._prepare_sync(data, alone=self._alone())
        alone = self._alone()
        started = time.perf_counter()
        (output,) = self.run_batch([x], alone=alone)
        self.metrics.batch_done(1, time.perf_counter() - started)
        return output

    # -- options -------------------------------------------------------------------------

    def _resolve(
        self, categories: Sequence[str], thresholds: Mapping[str, float], member_details: bool
    ) -> _Options:
        policy = self.engine.policy
        codes = policy.check_codes(categories) if categories else policy.codes
        for code, value in thresholds.items():
            policy.check_codes([code])
            if code not in self._column:
                raise InvalidInput(
                    f"threshold for {code}: this guard does not cover {code} "
                    f"(it scores {', '.join(self._column)})"
                )
            if not 0.0 <= value <= 1.0:
                raise InvalidInput(f"threshold for {code} is {value}; it must lie in [0, 1]")
        base = self.engine.card.thresholds
        covered = tuple(c for c in codes if c in self._column)
        return _Options(
            member_details=member_details,
            codes=codes,
            covered=covered,
            columns=np.array([self._column[c] for c in covered], dtype=np.intp),
            thresholds=np.array([thresholds.get(c, base[c]) for c in covered], dtype=np.float32),
        )

    def _options(self, msg: guard_pb2.ScreenOptions) -> _Options:
        if not msg.categories and not msg.thresholds and not msg.member_details:
            return self._default
        return self._resolve(tuple(msg.categories), dict(msg.thresholds), msg.member_details)

    # -- screening -----------------------------------------------------------------------

    def _alone(self) -> bool:
        return self.admission.in_service == 1

    def _prepare_sync(self, data: bytes, alone: bool = False) -> Any:
        size = 2 * self.engine.card.input_size
        img = decode_image(data, self.limits, draft_size=size, alone=alone)
        return self.engine.preprocess(img, self._beside if alone else None)

    def _prepare_and_enqueue(
        self, data: bytes, future: asyncio.Future, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Request thread: decode and hand the pixels straight to the batcher (or, without
        batching, run the model here), so a single request crosses the event loop once."""
        try:
            if future.done():
                return
            if self.batching.batches:
                self.batcher.enqueue([self._prepare_sync(data, self._alone())], [future])
            else:
                deliver_threadsafe(loop, future, self._run_unbatched(data))
        except Exception as exc:  # bad image, overload, model failure: the caller's error
            resolve_threadsafe(loop, future, exc)

    def _verdict(self, output: ItemOutput, opts: _Options) -> common_pb2.Verdict:
        selected = output.probabilities[opts.columns]
        flagged = selected >= opts.thresholds
        scored = {
            code: common_pb2.CategoryScore(
                category=code, probability=float(p), threshold=float(t), flagged=bool(f)
            )
            for code, p, t, f in zip(opts.covered, selected, opts.thresholds, flagged, strict=True)
        }
        scores = [
            scored[code]
            if code in scored
            else common_pb2.CategoryScore(category=code, not_covered=True)
            for code in opts.codes
        ]
        category = ""
        if flagged.any():
            category = opts.covered[int(np.argmax(np.where(flagged, selected, -1.0)))]
        members = []
        if opts.member_details:
            members = [
                common_pb2.MemberResult(
                    name=m.name,
                    latency_ms=m.seconds * 1000.0,
                    scores=[
                        common_pb2.CategoryScore(category=c, probability=float(p))
                        for c, p in zip(m.categories, m.probabilities, strict=True)
                    ],
                )
                for m in output.members
            ]
        return common_pb2.Verdict(
            rating=common_pb2.RATING_UNSAFE if category else common_pb2.RATING_SAFE,
            category=category,
            probability=float(selected.max()) if selected.size else 0.0,
            scores=scores,
            model=self._model,
            untrained=self.engine.card.untrained,
            members=members,
        )

    async def _output(self, data: bytes) -> ItemOutput:
        """One image's model output, from a request thread that hands it straight to this call
        (one crossing of the event loop)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ItemOutput] = loop.create_future()
        self.cpu_pool.submit(self._prepare_and_enqueue, data, future, loop)
        try:
            return await future
        except asyncio.CancelledError:
            future.cancel()  # deadline or disconnect: the batcher skips it
            raise

    async def screen(self, request: guard_pb2.ScreenRequest) -> guard_pb2.ScreenResponse:
        opts = self._options(request.options)
        with self.admission.admit(1):
            output = await self._output(request.image.data)
        return guard_pb2.ScreenResponse(
            image_id=request.image.id, verdict=self._verdict(output, opts)
        )

    async def _side_by_side(self, fn: Any, images: Sequence[bytes]) -> list[Any]:
        """`fn` on each image in the request threads: each entry its result, or the input
        error that image alone met."""
        outcomes = await asyncio.gather(
            *(self.on_cpu_pool(fn, d) for d in images), return_exceptions=True
        )
        for outcome in outcomes:  # anything but a per-image input error fails the call
            if isinstance(outcome, BaseException) and not isinstance(outcome, SafetyPairsError):
                raise outcome
        return list(outcomes)

    async def _outputs(self, images: Sequence[bytes]) -> list[ItemOutput | SafetyPairsError]:
        """Each image's model output, or the input error it alone met: through the batcher
        where batching pays, else each image run alone in its request thread."""
        if len(images) == 1:  # the usual tensor call: as `screen`, one crossing of the loop
            try:
                return [await self._output(images[0])]
            except SafetyPairsError as exc:
                return [exc]
        if not self.batching.batches:
            return await self._side_by_side(self._run_unbatched, images)
        prepared = await self._side_by_side(self._prepare_sync, images)
        good = [i for i, p in enumerate(prepared) if not isinstance(p, SafetyPairsError)]
        outputs = await self.batcher.submit_many([prepared[i] for i in good])
        for i, output in zip(good, outputs, strict=True):
            prepared[i] = output
        return prepared

    async def screen_batch(
        self, request: guard_pb2.ScreenBatchRequest
    ) -> guard_pb2.ScreenBatchResponse:
        images = request.images
        check_image_count(len(images), self.settings.max_images_per_request)
        opts = self._options(request.options)
        with self.admission.admit(len(images)):
            outcomes = await self._outputs([img.data for img in images])
        results = [
            guard_pb2.ScreenResult(image_id=img.id, error=item_error(out, i, img.id))
            if isinstance(out, SafetyPairsError)
            else guard_pb2.ScreenResult(image_id=img.id, verdict=self._verdict(out, opts))
            for i, (img, out) in enumerate(zip(images, outcomes, strict=True))
        ]
        return guard_pb2.ScreenBatchResponse(results=results)

    async def probabilities(self, images: Sequence[bytes]) -> np.ndarray:
        """All-or-nothing batch for tensor protocols (no per-item errors there): the covered
        categories' probabilities, (N, len(card.categories)); a bad image fails the call,
        named by its index."""
        check_image_count(len(images), self.settings.max_images_per_request)
        with self.admission.admit(len(images)):
            outputs = await self._outputs(images)
        for i, outcome in enumerate(outputs):
            if isinstance(outcome, SafetyPairsError):
                raise type(outcome)(f"image {i}: {outcome.message}")
        return np.stack([o.probabilities for o in outputs]).astype(np.float32)

    # -- description ---------------------------------------------------------------------

    def list_categories(self) -> common_pb2.ListCategoriesResponse:
        """Every category of the guard's policy (ModelInfo says which ones it covers)."""
        return common_pb2.ListCategoriesResponse(
            categories=[c.to_proto() for c in self.engine.policy.categories]
        )

    def model_info(self) -> guard_pb2.ModelInfo:
        s = self.settings
        return guard_pb2.ModelInfo(
            **dataclasses.asdict(self.engine.card),  # the card's fields are ModelInfo's
            providers=self.engine.providers,
            runtime=f"onnxruntime {ort.__version__}",
            max_batch_size=s.max_batch_size,
            max_image_bytes=s.max_image_bytes,
            max_image_pixels=s.max_image_pixels,
            max_images_per_request=s.max_images_per_request,
            not_covered=[c for c in self.engine.policy.codes if c not in self._column],
            members=[guard_pb2.MemberInfo(**dataclasses.asdict(m)) for m in self.engine.members],
            fusion=self.engine.fusion,
            reference=self.reference,
            batching=self.batching.description,
            batch_costs=[
                guard_pb2.BatchCost(batch_size=n, ms_per_image=sec * 1e3)
                for n, sec in self.batching.costs
            ],
        )
