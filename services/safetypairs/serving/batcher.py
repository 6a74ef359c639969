"""An async micro-batcher: requests from every protocol meet here and reach the model together.

Bounded: `max_queue` items may wait; a submit past that is refused at once with Overloaded.
With `max_wait_s == 0` the batcher sends whatever is queued as soon as the model is free, so a
lone request pays no waiting time while concurrent ones, arriving while the model runs, form
the next batch. A positive `max_wait_s` holds a batch open that long to let it fill.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from safetypairs.errors import Overloaded, Unavailable

In = TypeVar("In")
Out = TypeVar("Out")


class BatchObserver(Protocol):
    def batch_done(self, size: int, seconds: float) -> None: ...
    def queue_depth(self, depth: int) -> None: ...


@dataclass
class _Pending(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]


class MicroBatcher(Generic[In, Out]):
    """Runs `fn(list[In]) -> Sequence[Out]` (blocking, one batch at a time) in a worker thread."""

    def __init__(
        self,
        fn: Callable[[list[In]], Sequence[Out]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int,
        observer: BatchObserver | None = None,
    ) -> None:
        self._fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._observer = observer
        self._queue: collections.deque[_Pending[In, Out]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # One thread: the model runs one batch at a time; the next batch gathers meanwhile.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="batcher")

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def submit(self, item: In) -> Out:
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[In]) -> list[Out]:
        """Queue all items or none (a batch request is refused whole when it does not fit)."""
        if self._closing or self._task is None:
            raise Unavailable("the model is not accepting requests (starting or shutting down)")
        if len(self._queue) + len(items) > self.max_queue:
            raise Overloaded(
                f"server overloaded: {len(self._queue)} images queued, {len(items)} more would "
                f"pass the limit of {self.max_queue}; retry later or on another replica"
            )
        loop = asyncio.get_running_loop()
        pending = [_Pending(item, loop.create_future()) for item in items]
        self._queue.extend(pending)
        self._report_depth()
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*(p.future for p in pending)))
        except asyncio.CancelledError:
            # The caller went away (deadline, disconnect): drop its items that have not run.
            for p in pending:
                p.future.cancel()
            raise

    async def stop(self) -> None:
        """Refuse new work, finish what is queued, then stop the worker."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    def _report_depth(self) -> None:
        if self._observer is not None:
            self._observer.queue_depth(len(self._queue))

    def _take_batch(self) -> list[_Pending[In, Out]]:
        batch: list[_Pending[In, Out]] = []
        while self._queue and len(batch) < self.max_batch_size:
            p = self._queue.popleft()
            if not p.future.done():  # skip cancelled callers
                batch.append(p)
        self._report_depth()
        return batch

    async def _fill(self) -> None:
        """Wait up to max_wait_s for the queue to reach a full batch."""
        deadline = time.monotonic() + self.max_wait_s
        while len(self._queue) < self.max_batch_size and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_wait_s > 0:
                await self._fill()
            batch = self._take_batch()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(
                    self._executor, self._fn, [p.item for p in batch]
                )
                if len(outputs) != len(batch):
                    raise RuntimeError(
                        f"model returned {len(outputs)} results for a batch of {len(batch)}"
                    )
            except Exception as exc:  # the whole batch failed; each caller learns why
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
            else:
                for p, out in zip(batch, outputs, strict=True):
                    if not p.future.done():
                        p.future.set_result(out)
            if self._observer is not None:
                self._observer.batch_done(len(batch), time.perf_counter() - started)
