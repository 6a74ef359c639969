"""A call alone in the guard: on the event loop's thread when its image is small and the loop
was idle, in a request thread otherwise, with the same answers either way (docs/guard.md,
"A call alone")."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from pathlib import Path

import numpy as np
import prometheus_client
import pytest
from PIL import Image

import safetypairs.guard.runtime as guard_runtime
from safetypairs.guard.artifact import load_guard
from safetypairs.guard.runtime import GuardRuntime
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.serving.settings import GuardSettings
from safetypairs.v1 import common_pb2, guard_pb2


@pytest.fixture(scope="module")
def engine(default_guard_onnx: Path):
    return load_guard(str(default_guard_onnx), intra_op_threads=2, alone_session=True)


@pytest.fixture(scope="module")
def photo(sample_photos: list[Path]) -> bytes:
    buf = io.BytesIO()
    Image.open(sample_photos[0]).convert("RGB").resize((160, 120)).save(buf, format="PNG")
    return buf.getvalue()


async def _screened(runtime: GuardRuntime, data: bytes) -> tuple[float, int]:
    """The call's probability, and how often another task on the loop ran during the call:
    0 when the call ran on the loop's thread, many when it waited for a request thread."""
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    request = guard_pb2.ScreenRequest(image=common_pb2.Image(data=data))
    response = await runtime.screen(request)
    during = ticks - before
    stop = True
    await task
    return response.verdict.probability, during


def _runtime(engine) -> GuardRuntime:
    settings = dataclasses.replace(GuardSettings(), batching="off")
    registry = prometheus_client.CollectorRegistry()
    return GuardRuntime(engine, settings, ServiceMetrics("guard", prometheus_client, registry))


def test_a_small_call_alone_after_an_idle_loop_runs_on_the_loop(engine, photo, monkeypatch):
    runtime = _runtime(engine)

    async def scenario() -> list[tuple[float, int]]:
        runtime.start()
        try:
            seen = [await _screened(runtime, photo)]  # idle loop, small image: on the loop
            monkeypatch.setattr(guard_runtime, "LOOP_IDLE_S", 3600.0)
            seen.append(await _screened(runtime, photo))  # right after one: a request thread
            monkeypatch.setattr(guard_runtime, "LOOP_IDLE_S", 0.0)
            monkeypatch.setattr(guard_runtime, "LOOP_MAX_PIXELS", 160 * 120 - 1)
            seen.append(await _screened(runtime, photo))  # too large: a request thread
            return seen
        finally:
            await runtime.stop()

    (on_loop, p_loop), (queued, p_queued), (large, p_large) = (
        (ticks == 0, p) for p, ticks in asyncio.run(scenario())
    )
    assert on_loop and not queued and not large
    np.testing.assert_allclose([p_queued, p_large], [p_loop, p_loop], atol=1e-6)


def test_calls_side_by_side_run_in_request_threads(engine, photo):
    """With another call in the service, neither runs on the loop: both wait for a thread."""
    runtime = _runtime(engine)

    async def scenario() -> list[int]:
        runtime.start()
        try:
            with runtime.admission.admit(1):  # another image already in the service
                return [(await _screened(runtime, photo))[1] for _ in range(2)]
        finally:
            await runtime.stop()

    assert all(ticks > 0 for ticks in asyncio.run(scenario()))
