import asyncio
import threading

import pytest

from safetypairs.contract.errors import Overloaded, Unavailable
from safetypairs.serving.batcher import MicroBatcher


class Recorder:
    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.depths: list[int] = []

    def batch_done(self, size: int, seconds: float) -> None:
        self.sizes.append(size)

    def queue_depth(self, depth: int) -> None:
        self.depths.append(depth)


def doubler(gate: threading.Event | None = None):
    def run(items: list[int]) -> list[int]:
        if gate is not None:
            gate.wait(5)
        return [2 * i for i in items]

    return run


async def test_concurrent_submits_coalesce_while_the_model_is_busy():
    gate = threading.Event()
    rec = Recorder()
    b = MicroBatcher(doubler(gate), max_batch_size=8, max_wait_s=0, max_queue=100, observer=rec)
    b.start()
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.sleep(0.05)  # batch [0] is now running and blocked on the gate
    rest = [asyncio.ensure_future(b.submit(i)) for i in range(1, 11)]
    await asyncio.sleep(0.05)
    gate.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [2 * i for i in range(1, 11)]
    assert rec.sizes == [1, 8, 2]  # greedy: lone request at once, then full batches
    await b.stop()


async def test_wait_window_fills_a_batch():
    rec = Recorder()
    b = MicroBatcher(doubler(), max_batch_size=4, max_wait_s=0.2, max_queue=100, observer=rec)
    b.start()
    out = await asyncio.gather(*(b.submit(i) for i in range(4)))
    assert out == [0, 2, 4, 6] and rec.sizes == [4]
    await b.stop()


async def blocked_on_first_item(max_queue: int):
    """A batch-of-one batcher whose worker holds item 0 until `gate` is set."""
    gate = threading.Event()
    b = MicroBatcher(doubler(gate), max_batch_size=1, max_wait_s=0, max_queue=max_queue)
    b.start()
    running = asyncio.ensure_future(b.submit(0))
    await asyncio.sleep(0.05)
    return b, gate, running


async def test_full_queue_is_refused_at_once_and_whole():
    b, gate, running = await blocked_on_first_item(max_queue=3)
    queued = [asyncio.ensure_future(b.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded, match="2 images queued, 2 more would pass the limit of 3"):
        await b.submit_many([3, 4])  # all or nothing
    assert b.depth == 2
    gate.set()
    assert await running == 0 and await asyncio.gather(*queued) == [2, 4]
    await b.stop()


async def test_cancelled_callers_are_skipped():
    gate = threading.Event()
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        gate.wait(5)
        seen.append(items)
        return items

    b = MicroBatcher(run, max_batch_size=8, max_wait_s=0, max_queue=10)
    b.start()
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.sleep(0.05)
    doomed = asyncio.ensure_future(b.submit(1))
    kept = asyncio.ensure_future(b.submit(2))
    await asyncio.sleep(0)
    doomed.cancel()
    gate.set()
    await first
    assert await kept == 2
    assert seen == [[0], [2]]
    await b.stop()


async def test_cancelled_callers_do_not_count_against_the_queue_bound():
    b, gate, running = await blocked_on_first_item(max_queue=2)
    doomed = [asyncio.ensure_future(b.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    for d in doomed:
        d.cancel()
    await asyncio.sleep(0)
    # The worker has not reached the cancelled items yet; the newcomers still fit.
    fresh = asyncio.ensure_future(b.submit_many([3, 4]))
    await asyncio.sleep(0)
    gate.set()
    assert await running == 0 and await fresh == [6, 8]
    await b.stop()


async def test_model_failure_reaches_every_caller_of_that_batch_only():
    calls = {"n": 0}

    def flaky(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("model exploded")
        return items

    b = MicroBatcher(flaky, max_batch_size=4, max_wait_s=0.05, max_queue=10)
    b.start()
    results = await asyncio.gather(*(b.submit(i) for i in range(2)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await b.submit(7) == 7  # the batcher survives
    await b.stop()


async def test_stop_drains_then_refuses():
    b = MicroBatcher(doubler(), max_batch_size=2, max_wait_s=0, max_queue=10)
    b.start()
    pending = [asyncio.ensure_future(b.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    await b.stop()
    assert await asyncio.gather(*pending) == [0, 2, 4, 6, 8]
    with pytest.raises(Unavailable):
        await b.submit(1)
