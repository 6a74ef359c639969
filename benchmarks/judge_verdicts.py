"""What a judge verdict costs, measured in one run with the embedded default judge (tiny LLaVA,
random weights) on real photos:

* a verdict read from the rating-token probabilities of one forward pass vs the whole answer
  generated (under the answer's regular-expression constraint) and then parsed, at batch 1;
* N images rated in one batched forward pass vs one by one.

    python benchmarks/judge_verdicts.py [--repeats 5] [--batch 8]

Absolute times drift on these machines; the ratios are what to read. The tiny model has a
real LLaVA architecture but is far smaller than a production VLM, so the prompt (about 1,100
tokens with the built-in policy) dominates its forward pass as it does for real models, while
each generated token costs relatively less than on a 7B model: the generation ratio is a lower
bound for a real checkpoint.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from PIL import Image

from safetypairs.contract.policy import default_policy
from safetypairs.judge.default_model import ensure_default_judge
from safetypairs.judge.engine import JudgeEngine, RateJob
from safetypairs.training.demo_data import sample_photos


def median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        engine = JudgeEngine(ensure_default_judge(home))
        photos = [Image.open(path).convert("RGB") for path in sample_photos()]
        while len(photos) < args.batch:
            photos += photos
        photos = photos[: args.batch]
        policy = default_policy()
        jobs = [RateJob(img, policy, 0.5, False) for img in photos]
        prompt_tokens = len(engine._ids(engine.chat(engine.rate_prompt(policy))))

        forward = median_s(lambda: engine.rate(jobs[:1], "forward"), args.repeats)
        generate = median_s(lambda: engine.rate(jobs[:1], "generate"), args.repeats)
        generated = engine.rate(jobs[:1], "generate")[0]
        batched = median_s(lambda: engine.rate(jobs, "forward"), args.repeats)
        one_by_one = median_s(lambda: [engine.rate([job], "forward") for job in jobs], args.repeats)

    print(
        f"judge {engine.card.name} ({engine.card.architecture}, untrained), "
        f"{torch.get_num_threads()} torch threads, prompt {prompt_tokens} tokens, "
        f"median of {args.repeats}"
    )
    print(
        f"verdict at batch 1: forward pass {forward * 1000:.1f} ms, "
        f"generate-then-parse {generate * 1000:.1f} ms "
        f"(answer read as {generated.source}) -> forward is {generate / forward:.1f}x cheaper "
        "(aim: at least 3x)"
    )
    print(
        f"{args.batch} images: one batched pass {batched * 1000:.1f} ms "
        f"({batched / args.batch * 1000:.1f} ms/image), one by one {one_by_one * 1000:.1f} ms "
        f"-> batched is {one_by_one / batched:.2f}x faster"
    )


if __name__ == "__main__":
    main()
