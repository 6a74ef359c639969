"""Pair generation's throughput against its slowest stage, measured in one run with the
embedded services (untrained judge and editor) on loopback.

Each stage is first timed alone, at the concurrency the pipeline gives it: edits per second
(editor), verdicts per second and proposal calls per second (judge). The pipeline then runs on
the same images; from the calls it made per candidate, each stage's own rate converts into the
candidates per second that stage alone could sustain. The slowest of those is the bound; the
figure is the pipeline's candidates per second divided by it (aim: at least 0.8).

    python benchmarks/pair_throughput.py [--images 6] [--steps 4] [--torch-threads 1]

The judge and the editor share this machine's cores, so stages that overlap in the pipeline
also compete for CPU: on separate GPUs (the deployment) they would not.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from PIL import Image
from tiny_stack import start_tiny_services

from safetypairs.client import AsyncEditClient, AsyncJudgeClient
from safetypairs.contract.policy import default_policy
from safetypairs.pairs.criteria import Criteria
from safetypairs.pairs.dataset import PairDataset
from safetypairs.pairs.pipeline import GenerationConfig, PairGenerator
from safetypairs.training.demo_data import sample_photos


async def rate_of(calls: int, concurrency: int, make) -> float:
    """Calls per second of `make()` coroutines, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await make()

    await one()  # warm-up
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return calls / (time.perf_counter() - started)


async def measure(
    judge_target: str,
    edit_target: str,
    folder: Path,
    out: Path,
    steps: int,
    config: GenerationConfig,
) -> None:
    images = sorted(folder.iterdir())
    sample = images[0].read_bytes()
    async with AsyncJudgeClient(judge_target) as judge, AsyncEditClient(edit_target) as editor:
        policy = config.policy
        edit_rate = await rate_of(
            8,
            config.edit_concurrency,
            lambda: editor.edit(sample, "add a red hat", seed=1, steps=steps),
        )
        rate_rate = await rate_of(
            16, config.judge_concurrency, lambda: judge.rate(sample, policy=policy)
        )
        propose_rate = await rate_of(
            6,
            config.judge_concurrency,
            lambda: judge.propose_edits(
                sample, "to_unsafe", category="O6", count=config.proposals, seed=1, policy=policy
            ),
        )
        started = time.perf_counter()
        progress = await PairGenerator(judge, editor, out, config).run(images)
        seconds = time.perf_counter() - started
    records = [r for r in PairDataset.open(out).pairs() if r.instruction is not None]
    candidates = len(records)
    units = len({r.unit for r in records})
    sources = progress.sources_total
    # Calls the run made: a null edit and a verdict per source, a proposal call per attempt,
    # an edit and a verdict per candidate.
    attempts = len({(r.unit, r.attempt) for r in records})
    per_candidate = {
        "edit": (sources + candidates) / candidates,
        "rate": (sources + candidates) / candidates,
        "propose": attempts / candidates,
    }
    alone = {"edit": edit_rate, "rate": rate_rate, "propose": propose_rate}
    bound = {stage: alone[stage] / per_candidate[stage] for stage in alone}
    slowest = min(bound, key=bound.__getitem__)
    judge_bound = 1 / (1 / bound["rate"] + 1 / bound["propose"])  # both on the judge
    pipeline = candidates / seconds
    print(
        f"{sources} images, {units} units, {attempts} attempts, {candidates} candidates "
        f"in {seconds:.1f} s; edit steps {steps}; concurrency judge "
        f"{config.judge_concurrency}, edit {config.edit_concurrency}"
    )
    for stage in alone:
        print(
            f"  {stage:8s} alone {alone[stage]:6.2f} calls/s, {per_candidate[stage]:.2f} per "
            f"candidate -> {bound[stage]:6.2f} candidates/s"
        )
    print(f"  judge (rate + propose, one service) -> {judge_bound:6.2f} candidates/s")
    limit = min(bound[slowest], judge_bound)
    busy = ", ".join(f"{k} {v:.1f} s" for k, v in progress.stage_seconds.items())
    print(f"  time in calls (summed over concurrent calls): {busy}; backoffs {progress.backoffs}")
    print(
        f"pipeline {pipeline:.2f} candidates/s; slowest stage bound {limit:.2f} candidates/s "
        f"-> {pipeline / limit:.2f} of it (aim: at least 0.8)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="each service's torch threads (0 = all)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        folder = home / "images"
        folder.mkdir()
        for path in sample_photos(args.images):
            Image.open(path).convert("RGB").resize((128, 128)).save(folder / f"{path.name}.png")
        judge, edit = start_tiny_services(home, args.steps, args.torch_threads)
        # Criteria the untrained stack never meets, so every unit runs all its attempts.
        config = GenerationConfig(
            policy=default_policy(),
            categories=("O6",),
            directions=("to_unsafe",),
            proposals=2,
            attempts=2,
            criteria=Criteria(0.5, 0.0),
            edit_steps=args.steps,
        )
        try:
            asyncio.run(
                measure(
                    judge.grpc_target, edit.grpc_target, folder, home / "ds", args.steps, config
                )
            )
        finally:
            judge.stop()
            edit.stop()


if __name__ == "__main__":
    main()
