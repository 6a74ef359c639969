"""Batch only where it pays: the guard measures its model's cost per image by batch size on
the device it runs on, at start-up, and batches only up to the size that is cheaper per image
than one image at a time.

On a CPU a convolutional guard usually costs more per image in a batch (issue 22 measured
EfficientNet-Lite0 at batch 16 at 1.15x batch 1's cost per image on 2 cores), so the policy is
one image per model call and the requests run side by side, one per core; on a GPU batches are
almost always cheaper and the micro-batcher groups the requests that wait. The setting
`batching` pins the policy (`on`: up to max_batch_size; `off`: one image per call) and skips the
measurement. The device cannot change under a running worker: a new device is a new worker,
which measures again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from safetypairs.guard.outputs import GuardModel

log = logging.getLogger(__name__)

# A batch must cost at most this share of batch 1's time per image to be worth forming. The
# model's own saving is not the server's: a batch waits to be formed and hands over to the
# batcher's thread, where without batching two requests already run side by side. On a 2-core
# CPU (measured by hand; benchmarks/RESULTS.md says how), EfficientNet-Lite0 at batch 4 cost
# 0.85-0.88x batch 1 per image, yet serving batches of up to 4 gave no more throughput at 16
# clients than one image per call (98-100 against 99-104 images/s) and held 40 MB more memory;
# batch 2 measured 0.83-0.97x from one start to the next, so a 0.9 margin switched batching on
# at random. GPUs save far more than a quarter.
PAYS = 0.75
REPEATS = 3  # timed runs per batch size; the fastest counts (noise only adds time)


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int  # images per model call at most; 1 = no batching
    description: str  # what was decided and why, for GetModelInfo and the log
    costs: tuple[tuple[int, float], ...] = ()  # (batch size, seconds per image), measured

    @property
    def batches(self) -> bool:
        return self.max_batch_size > 1


def _seconds(model: GuardModel, batch: list[Any]) -> float:
    started = time.perf_counter()
    model.run(batch)
    return time.perf_counter() - started


def measure(model: GuardModel, limit: int) -> list[tuple[int, float]]:
    """Cost per image at batch 1, 2, 4, ... up to `limit`, stopping at the first size that
    does not pay (no time spent on larger batches a CPU will never use). Each size is timed
    in turn with batch 1, so that a busy moment on a shared machine hits both alike; the
    fastest run of each counts (noise only adds time)."""
    probe = model.preprocess(Image.new("RGB", (model.card.input_size, model.card.input_size)))
    model.run([probe])  # first run: allocations, kernel selection
    one = _seconds(model, [probe])
    costs: list[tuple[int, float]] = []
    size = 2
    while size <= limit:
        batch = [probe] * size
        per_image = float("inf")
        for _ in range(REPEATS):
            one = min(one, _seconds(model, [probe]))
            per_image = min(per_image, _seconds(model, batch) / size)
        costs.append((size, per_image))
        if per_image > PAYS * one:
            break
        size *= 2
    return [(1, one), *costs]


def _table(costs: Sequence[tuple[int, float]]) -> str:
    return ", ".join(f"{n}: {s * 1e3:.2f} ms" for n, s in costs)


def choose(model: GuardModel, mode: str, limit: int) -> BatchPolicy:
    """The policy for `mode` (auto, on, off) with batches of at most `limit` images; warms the
    model up at the sizes it will run."""
    device = model.providers[0] if model.providers else "unknown device"
    if mode == "off":
        model.warmup((1,))
        return BatchPolicy(1, "pinned off: one image per model call (SAFETYPAIRS_BATCHING=off)")
    if mode == "on":
        model.warmup((1, limit))
        return BatchPolicy(
            limit, f"pinned on: up to {limit} images per model call (SAFETYPAIRS_BATCHING=on)"
        )
    costs = measure(model, limit)
    # The measurement's largest batches grew onnxruntime's arena (by about 30 MB at batch 4,
    # 150 MB at 16 for EfficientNet-Lite0); serving regrows it only to the batches it runs.
    model.release_arena()
    # The cheapest size per image among those that pay (a larger batch may cost more again).
    paying = [(s, n) for n, s in costs[1:] if s <= PAYS * costs[0][1]]
    size = min(paying)[1] if paying else 1
    if size == 1:
        why = (
            f"one image per model call: batch {costs[-1][0]} costs "
            f"{costs[-1][1] / costs[0][1]:.2f}x batch 1 per image on {device}"
            if len(costs) > 1
            else "one image per model call (max_batch_size is 1)"
        )
    else:
        ratio = dict(costs)[size] / costs[0][1]
        why = f"batches of up to {size}: {ratio:.2f}x batch 1's cost per image on {device}"
    policy = BatchPolicy(size, f"auto: {why}", tuple(costs))
    log.info(
        "guard batching %s; cost per image by batch size: %s", policy.description, _table(costs)
    )
    return policy
