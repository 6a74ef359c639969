"""A micro-batcher: requests from every protocol meet here and reach the model together.

Bounded: `max_queue` items may wait; an enqueue past that is refused at once with Overloaded.
With `max_wait_s == 0` the worker sends whatever is queued as soon as the model is free, so a
lone request pays no waiting time while concurrent ones, arriving while the model runs, form
the next batch. A positive `max_wait_s` holds a batch open that long to let it fill.

The model runs in one dedicated worker thread (one batch at a time). Items can be enqueued
from the event loop or from any thread (the image decoders hand their pixels over directly,
saving a round trip through the loop); results go back to asyncio futures on their loop.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from safetypairs.contract.errors import Overloaded, Unavailable

In = TypeVar("In")
Out = TypeVar("Out")


class BatchObserver(Protocol):
    def batch_done(self, size: int, seconds: float) -> None: ...
    def queue_depth(self, depth: int) -> None: ...


@dataclass
class _Pending(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]


def _settle(outcomes: list[tuple[asyncio.Future, object, BaseException | None]]) -> None:
    """Runs on the futures' loop: deliver results, skipping callers that went away."""
    for future, value, error in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def resolve_threadsafe(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future, error: BaseException
) -> None:
    """Fail `future` from another thread."""
    loop.call_soon_threadsafe(_settle, [(future, None, error)])


def deliver_threadsafe(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future, value: object
) -> None:
    """Give `future` its result from another thread (skipped if its caller went away)."""
    loop.call_soon_threadsafe(_settle, [(future, value, None)])


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
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def accepting(self) -> bool:
        """Started and not stopping: new work is taken."""
        return self._thread is not None and not self._closing

    def start(self) -> None:
        """Start the worker; results are delivered to the running event loop."""
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
            self._thread.start()

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self.enqueue([item], [future])
        try:
            return await future  # no gather: the single-item path is the hot one
        except asyncio.CancelledError:
            future.cancel()  # the caller went away: the worker skips the item if not yet run
            raise

    async def submit_many(self, items: Sequence[In]) -> list[Out]:
        """Queue all items or none (a batch request is refused whole when it does not fit)."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Out]] = [loop.create_future() for _ in items]
        self.enqueue(items, futures)
        try:
            return list(await asyncio.gather(*futures))
        except asyncio.CancelledError:
            for f in futures:
                f.cancel()
            raise

    def enqueue(self, items: Sequence[In], futures: Sequence[asyncio.Future[Out]]) -> None:
        """Thread-safe: queue items whose results go to `futures` (created on the batcher's
        loop), all or none; raise Unavailable or Overloaded at once when they cannot wait."""
        with self._cond:
            if self._closing or self._thread is None:
                raise Unavailable("the model is not accepting requests (starting or shutting down)")
            if len(self._queue) + len(items) > self.max_queue:
                # Callers that went away still sit in the queue until the worker reaches them;
                # they must not count against the bound (a cancelled request frees its slot).
                self._queue = collections.deque(p for p in self._queue if not p.future.done())
            if len(self._queue) + len(items) > self.max_queue:
                raise Overloaded(
                    f"server overloaded: {len(self._queue)} images queued, {len(items)} more "
                    f"would pass the limit of {self.max_queue}; retry later or on another replica"
                )
            self._queue.extend(_Pending(i, f) for i, f in zip(items, futures, strict=True))
            depth = len(self._queue)
            self._cond.notify()
        self._report_depth(depth)

    async def stop(self) -> None:
        """Refuse new work, finish what is queued, then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    def _report_depth(self, depth: int) -> None:
        if self._observer is not None:
            self._observer.queue_depth(depth)

    def _next_batch(self) -> list[_Pending[In, Out]] | None:
        """Block until there is work (None: closing and drained); wait for a batch to fill
        when max_wait_s > 0; take up to max_batch_size live items."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            if self.max_wait_s > 0:
                deadline = time.monotonic() + self.max_wait_s
                while len(self._queue) < self.max_batch_size and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._cond.wait(remaining):
                        break
            batch: list[_Pending[In, Out]] = []
            while self._queue and len(batch) < self.max_batch_size:
                p = self._queue.popleft()
                if not p.future.done():  # skip cancelled callers
                    batch.append(p)
            depth = len(self._queue)
        self._report_depth(depth)
        return batch

    def _run(self) -> None:
        assert self._loop is not None
        while (batch := self._next_batch()) is not None:
            if not batch:
                continue
            started = time.perf_counter()
            try:
                outputs = self._fn([p.item for p in batch])
                if len(outputs) != len(batch):
                    raise RuntimeError(
                        f"model returned {len(outputs)} results for a batch of {len(batch)}"
                    )
                outcomes = [(p.future, out, None) for p, out in zip(batch, outputs, strict=True)]
            except Exception as exc:  # the whole batch failed; each caller learns why
                outcomes = [(p.future, None, exc) for p in batch]
            if self._observer is not None:
                self._observer.batch_done(len(batch), time.perf_counter() - started)
            try:
                self._loop.call_soon_threadsafe(_settle, outcomes)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return
