"""Giving freed heap memory back to the system after bursts, and keeping start-up's objects out
of the garbage collector's way.

A burst of requests (hundreds of cancelled calls, say) leaves glibc's malloc holding the freed
memory in its heaps and arenas; the process's RSS stays at the burst's peak and only grows
with the next one (measured in benchmarks/hardening.py). `malloc_trim(0)` returns the free
pages. `MemoryTrimmer` calls it in a thread (it takes the allocator's lock for milliseconds)
every `interval_s`; on a heap with nothing to give back that costs microseconds. Where the C
library is not glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def freeze_loaded_objects() -> None:
    """Move every object start-up left (BentoML, the services' modules, the model's Python
    side: some 120,000 in the guard) into the collector's permanent generation. Its full
    collections then walk only what requests create: walking start-up's objects took 58 ms a
    time on these cores, and the guard's p99 at one client was 22-27 ms with them against
    17-18 ms frozen (benchmarks/RESULTS.md, issue 22). Collected once first, so that no garbage
    is frozen with them."""
    gc.collect()
    gc.freeze()


# glibc's mallopt parameter, and the size from which an allocation gets its own mapping.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20


def map_large_allocations() -> None:
    """Give every allocation of 1 MiB or more (decoded images, mostly) its own mapping, which
    free returns to the system at once. glibc's default raises that threshold to the largest
    block freed so far (up to 32 MiB), after which large images come from the heap and their
    memory stays there: under the hostile corpus the guard then grew 20-38 MiB over ten rounds.
    Setting it fixes it. Where the C library is not glibc, nothing."""
    if (mallopt := _glibc("mallopt")) is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def _glibc(name: str) -> Callable[..., int] | None:
    """glibc's function `name`, or None where the C library has none."""
    with contextlib.suppress(OSError, AttributeError):
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    return None


class MemoryTrimmer:
    """Trims the heap every `interval_s` seconds (0 = never)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._trim = _glibc("malloc_trim") if interval_s > 0 else None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._trim is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        assert self._trim is not None
        while True:
            await asyncio.sleep(self.interval_s)
            await asyncio.to_thread(self._trim, 0)
