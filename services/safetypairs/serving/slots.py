"""Bounded concurrency with a bounded wait queue, for models that run one job at a time per
device (a diffusion step holds the whole GPU): at most `concurrency` jobs run, at most `queue`
wait for a slot, and any more are refused at once instead of buffered without bound."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from safetypairs.contract.errors import Overloaded


class Slots:
    """Used from the event-loop thread only. A waiter that is cancelled (deadline, client gone)
    leaves the queue; a holder frees its slot when its block exits."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self.running = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(concurrency)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self.running + self.waiting >= self.concurrency + self.queue:
            raise Overloaded(
                f"server overloaded: {self.running} edits running and {self.waiting} waiting "
                f"(limits {self.concurrency} and {self.queue}); retry later or on another replica"
            )
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()
