"""The screening cascade's cost, measured in one run against the real guard (embedded default
ensemble) and judge (embedded default, untrained tiny LLaVA) services on loopback:

* p50/p99 of the cascade when nothing escalates vs the guard alone (aim: under 1.1x);
* p50/p99 when every image escalates, and what the escalation adds.

    python benchmarks/cascade_latency.py [--requests 300] [--escalated 40]

Calls are sequential (one caller), so the figures are per-call latency, not throughput.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import skimage

from safetypairs.client import GuardClient, JudgeClient
from safetypairs.guard.default_model import ensure_default_guard
from safetypairs.judge.default_model import ensure_default_judge
from safetypairs.screening import CascadeConfig, Screener
from safetypairs.serving.launcher import GUARD_SERVICE, JUDGE_SERVICE, ServiceProcess


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(5):
        fn()  # warm-up
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def describe(name: str, ms: list[float]) -> str:
    return (
        f"{name}: p50 {statistics.median(ms):.2f} ms, p99 {percentile(ms, 99):.2f} ms "
        f"({len(ms)} calls)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--escalated", type=int, default=40)
    args = parser.parse_args()
    image = (Path(skimage.__file__).parent / "data" / "chelsea.png").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ensure_default_guard(str(home))
        ensure_default_judge(str(home))
        env = {"SAFETYPAIRS_HOME": str(home), "BENTOML_HOME": str(home / "bentoml")}
        guard = ServiceProcess.start(GUARD_SERVICE, home / "guard.log", env)
        judge = ServiceProcess.start(JUDGE_SERVICE, home / "judge.log", env)
        try:
            with GuardClient(guard.grpc_target) as g, JudgeClient(judge.grpc_target) as j:
                alone = timed(lambda: g.screen(image), args.requests)
                quiet = Screener(g, j, CascadeConfig(band=(0.999, 1.0)))
                assert not quiet.screen(image).escalated
                cascade = timed(lambda: quiet.screen(image), args.requests)
                loud = Screener(
                    g, j, CascadeConfig(band=(0.0, 1.0), deadline_s=60, judge_timeout_s=60)
                )
                assert loud.screen(image).decided_by == "judge"
                escalated = timed(lambda: loud.screen(image), args.escalated)
        finally:
            guard.stop()
            judge.stop()
    a, c, e = (statistics.median(x) for x in (alone, cascade, escalated))
    print("chelsea.png (451x300); guard = default ensemble, judge = untrained tiny LLaVA")
    print(describe("guard alone", alone))
    print(describe("cascade, nothing escalates", cascade))
    print(
        f"  -> p50 {c / a:.3f}x, p99 {percentile(cascade, 99) / percentile(alone, 99):.3f}x "
        "the guard alone (aim: under 1.1x)"
    )
    print(describe("cascade, every image escalates", escalated))
    print(f"  -> escalation adds {e - a:.1f} ms at p50 ({e / a:.1f}x the guard alone)")


if __name__ == "__main__":
    main()
