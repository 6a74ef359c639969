"""The guard's batching policy (measured at start-up, or pinned), the path without batching
against the micro-batcher's, and the cores the threads are sized from."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import prometheus_client
import pytest

from safetypairs.contract.errors import InvalidInput
from safetypairs.guard.artifact import load_guard
from safetypairs.guard.batching import PAYS, choose
from safetypairs.guard.runtime import GuardRuntime
from safetypairs.serving.cores import usable_cores
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.serving.settings import GuardSettings, SettingsError
from safetypairs.v1 import common_pb2, guard_pb2


@pytest.fixture(scope="module")
def engine(tiny_guard_onnx: Path):
    return load_guard(str(tiny_guard_onnx))


def test_auto_measures_cost_per_image_and_batches_only_where_it_pays(engine):
    policy = choose(engine, "auto", 8)
    sizes = [n for n, _ in policy.costs]
    assert sizes[0] == 1 and sizes == [2**i for i in range(len(sizes))] and sizes[-1] <= 8
    assert all(seconds > 0 for _, seconds in policy.costs)
    per_image = dict(policy.costs)
    # The chosen size is one that was measured and paid (or 1, which always qualifies).
    assert per_image[policy.max_batch_size] <= PAYS * per_image[1] or policy.max_batch_size == 1
    assert policy.description.startswith("auto: ")
    assert policy.batches == (policy.max_batch_size > 1)


def test_a_pinned_policy_measures_nothing(engine):
    on, off = choose(engine, "on", 8), choose(engine, "off", 8)
    assert (on.max_batch_size, on.costs, on.description.startswith("pinned on")) == (8, (), True)
    assert (off.max_batch_size, off.costs, off.batches) == (1, (), False)


def test_the_measurement_gives_back_the_memory_its_large_batches_took(default_guard_onnx: Path):
    """onnxruntime's arena keeps what the largest batch took; after the batching measurement
    the guard shrinks it to what it serves (in a fresh process: RSS is per process)."""
    probe = (
        "import json, sys, psutil\n"
        "from safetypairs.guard.artifact import load_guard\n"
        "engine = load_guard(sys.argv[1]); engine.warmup((1,))\n"
        "rss = lambda: psutil.Process().memory_info().rss\n"
        "one = rss(); engine.warmup((16,)); grown = rss(); engine.release_arena()\n"
        "print(json.dumps([one, grown, rss()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(default_guard_onnx)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    one, grown, released = json.loads(out.stdout.strip().splitlines()[-1])
    assert grown - one > 50 * 2**20, "a batch of 16 should grow the arena by far more"
    assert released - one < (grown - one) / 4, (one, grown, released)


def test_batching_setting_is_validated():
    assert GuardSettings.from_env({"SAFETYPAIRS_BATCHING": "off"}).batching == "off"
    with pytest.raises(SettingsError, match="SAFETYPAIRS_BATCHING must be one of auto, on, off"):
        GuardSettings.from_env({"SAFETYPAIRS_BATCHING": "sometimes"})


def _answers(engine, mode: str, images: list[bytes]) -> tuple[np.ndarray, list]:
    settings = dataclasses.replace(GuardSettings(), batching=mode, max_batch_size=8)
    registry = prometheus_client.CollectorRegistry()
    runtime = GuardRuntime(engine, settings, ServiceMetrics("guard", prometheus_client, registry))

    async def scenario():
        runtime.start()
        try:
            probs = await runtime.probabilities(images)
            request = guard_pb2.ScreenBatchRequest(
                images=[common_pb2.Image(data=d) for d in [*images, b"not an image"]]
            )
            batch = await runtime.screen_batch(request)
            return probs, batch
        finally:
            await runtime.stop()

    return asyncio.run(scenario())


def test_without_batching_the_answers_are_the_batchers(engine, sample_photos):
    images = [p.read_bytes() for p in sample_photos]
    alone, alone_batch = _answers(engine, "off", images)
    batched, batched_batch = _answers(engine, "on", images)
    assert np.abs(alone - batched).max() < 1e-5
    assert [r.WhichOneof("outcome") for r in alone_batch.results] == ["verdict"] * len(images) + [
        "error"
    ]
    assert alone_batch.results[-1].error.kind == batched_batch.results[-1].error.kind


def test_a_bad_image_fails_a_tensor_call_by_index(engine, sample_photos):
    with pytest.raises(InvalidInput, match="image 1: not a supported image"):
        _answers(engine, "off", [sample_photos[0].read_bytes(), b"garbage"])


@pytest.mark.parametrize(
    ("batching", "spin_alone", "opened"),
    [("off", True, True), ("on", True, False), ("off", False, False)],
)
def test_the_session_for_calls_alone_opens_only_where_calls_run_alone(
    tiny_guard_onnx, batching, spin_alone, opened
):
    """With batching on, calls meet in the micro-batcher and never run alone: the second
    session would only hold memory."""
    engine = load_guard(str(tiny_guard_onnx), intra_op_threads=2)
    settings = dataclasses.replace(GuardSettings(), batching=batching, ort_spin_alone=spin_alone)
    registry = prometheus_client.CollectorRegistry()
    runtime = GuardRuntime(engine, settings, ServiceMetrics("guard", prometheus_client, registry))

    async def scenario() -> None:
        runtime.start()
        await runtime.stop()

    asyncio.run(scenario())
    assert (engine.alone_session is not None) is opened


def test_usable_cores_follow_the_cgroup_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    unlimited = usable_cores(tmp_path)
    assert unlimited >= 1
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 cores: two threads
    assert usable_cores(tmp_path) == min(unlimited, 2)
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cores(tmp_path) == 1
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores(v1) == 1
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "unlimited"
    assert usable_cores(v1) == unlimited
