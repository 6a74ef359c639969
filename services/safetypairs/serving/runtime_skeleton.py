"""What every service's runtime (the request handling both protocols share) is built on.

A runtime holds the engine, the reference it was loaded from, the settings, the metrics and
the image limits; it owns a thread pool for the per-request CPU work (decoding, preprocessing,
encoding) so the event loop never waits on it; and it has one start / ready / stop life, driven
by the worker (serving.lifecycle). The guard and the judge put one micro-batcher and an
admission bound in front of the model (BatchedRuntime); the editor adds model slots.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Generic, TypeVar

from safetypairs.contract.images import ImageLimits
from safetypairs.serving.admission import Admission
from safetypairs.serving.batcher import MicroBatcher
from safetypairs.serving.cores import usable_cores
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.serving.settings import ServingSettings

EngineT = TypeVar("EngineT")
SettingsT = TypeVar("SettingsT", bound=ServingSettings)
ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT")
R = TypeVar("R")


class ServiceRuntime(Generic[EngineT, SettingsT]):
    """The skeleton: subclasses add what they derive in `setup` and their request methods."""

    def __init__(
        self,
        engine: EngineT,
        settings: SettingsT,
        metrics: ServiceMetrics,
        reference: str = "embedded default",
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self.reference = reference
        self.limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)
        self.cpu_threads = settings.decode_threads or usable_cores()
        self.cpu_pool = concurrent.futures.ThreadPoolExecutor(
            self.cpu_threads, thread_name_prefix="request-cpu"
        )
        self._accepting = False
        self.setup()

    def setup(self) -> None:
        """What a runtime derives from its engine and settings (at construction: a model or
        setting it cannot work with fails the worker's start-up)."""

    def start(self) -> None:
        """Take requests (called on the running event loop)."""
        self._accepting = True

    @property
    def ready(self) -> bool:
        return self._accepting

    async def stop(self) -> None:
        """Finish the work in hand, then release the threads."""
        self._accepting = False
        self.cpu_pool.shutdown(wait=True)

    async def on_cpu_pool(self, fn: Callable[..., R], *args: object) -> R:
        """`fn(*args)` in the request thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.cpu_pool, fn, *args)


class BatchedRuntime(ServiceRuntime[EngineT, SettingsT], Generic[EngineT, SettingsT, ItemT, OutT]):
    """A runtime whose model calls go through one micro-batcher (requests of both protocols
    share forward passes), with admission bounding the images in hand. Subclasses give the
    batcher's model call, `run_batch`."""

    def setup(self) -> None:
        settings = self.settings
        self.batcher: MicroBatcher[ItemT, OutT] = MicroBatcher(
            self.run_batch,
            max_batch_size=self.batch_limit(),
            max_wait_s=settings.max_batch_wait_ms / 1000.0,
            max_queue=settings.max_queue,
            observer=self.metrics,
        )
        self.admission = Admission(settings.max_queue, settings.max_queue_wait_ms / 1000.0)

    def run_batch(self, batch: list[ItemT]) -> list[OutT]:
        raise NotImplementedError

    def batch_limit(self) -> int:
        """Most items per model call (the guard's may be smaller: batching.py)."""
        return self.settings.max_batch_size

    def start(self) -> None:
        self.batcher.start()
        super().start()

    @property
    def ready(self) -> bool:
        return self.batcher.accepting

    async def stop(self) -> None:
        await self.batcher.stop()  # answers what is queued
        await super().stop()
