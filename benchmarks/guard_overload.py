"""The guard service driven past its capacity, measured in one run: every request must get an
answer or a fast refusal, accepted requests must stay fast, the service must stay healthy.

    python benchmarks/guard_overload.py [--seconds 30] [--factor 4] [--configs 64,64:25,64:50]

A configuration is `max_queue` or `max_queue:max_queue_wait_ms`. For each: measure the
unloaded latency (sequential calls) and the capacity (a closed loop of 16 concurrent callers
for 8 s), then offer `factor` x the first configuration's capacity open-loop for `seconds`,
each call with a 10 s deadline, and count what came back. Loopback only; the load generator
stops by itself. It shares the machine's 2 cores with the service.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import tempfile
import time

import numpy as np
import skimage

from safetypairs.client import NO_RETRY, AsyncGuardClient, ChannelOptions, GuardClient
from safetypairs.contract.errors import Overloaded, SafetyPairsError
from safetypairs.guard.default_model import ensure_default_guard
from safetypairs.serving.launcher import GUARD_SERVICE, ServiceProcess

IMAGE = (pathlib.Path(skimage.__file__).parent / "data" / "chelsea.png").read_bytes()
OPTIONS = ChannelOptions(retry=NO_RETRY)


async def capacity(target: str, seconds: float, callers: int = 16) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def caller(client: AsyncGuardClient) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            try:
                await client.screen(IMAGE)
                done += 1
            except Overloaded:
                await asyncio.sleep(0.01)

    async with AsyncGuardClient(target, options=OPTIONS) as client:
        started = time.perf_counter()
        await asyncio.gather(*(caller(client) for _ in range(callers)))
        return done / (time.perf_counter() - started)


async def overload(target: str, rate: float, seconds: float) -> dict[str, list[float]]:
    outcomes: dict[str, list[float]] = {"ok": [], "refused": [], "other": []}

    async def one(client: AsyncGuardClient) -> None:
        started = time.perf_counter()
        try:
            await client.screen(IMAGE, timeout=10)
            outcomes["ok"].append(time.perf_counter() - started)
        except Overloaded:
            outcomes["refused"].append(time.perf_counter() - started)
        except SafetyPairsError:
            outcomes["other"].append(time.perf_counter() - started)

    async with AsyncGuardClient(target, options=OPTIONS) as client:
        tasks = []
        start = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - start < seconds:
            due = start + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            tasks.append(asyncio.ensure_future(one(client)))
            n += 1
        await asyncio.gather(*tasks)
    return outcomes


def run(
    config: str, args: argparse.Namespace, home: pathlib.Path, reference: float | None
) -> float:
    """One configuration; offered `factor` x `reference` req/s, or x its own capacity when
    no reference is given. Returns the capacity measured."""
    queue_text, _, wait_ms = config.partition(":")
    queue = int(queue_text)
    service = ServiceProcess.start(
        GUARD_SERVICE,
        home / f"guard-{queue}-{wait_ms or 0}.log",
        {
            "SAFETYPAIRS_HOME": str(home),
            "SAFETYPAIRS_GUARD_MODEL": "",
            "SAFETYPAIRS_MAX_QUEUE": str(queue),
            "SAFETYPAIRS_MAX_QUEUE_WAIT_MS": wait_ms or "0",
            "SAFETYPAIRS_MAX_IMAGES_PER_REQUEST": str(min(64, queue)),
            "BENTOML_HOME": str(home / "bentoml"),
        },
    )
    try:
        with GuardClient(service.grpc_target, options=OPTIONS) as client:
            for _ in range(10):
                client.screen(IMAGE)
            unloaded = []
            for _ in range(60):
                t = time.perf_counter()
                client.screen(IMAGE)
                unloaded.append(time.perf_counter() - t)
        cap = asyncio.run(capacity(service.grpc_target, 8))
        rate = args.factor * (reference or cap)
        outcomes = asyncio.run(overload(service.grpc_target, rate, args.seconds))
        with GuardClient(service.grpc_target, options=OPTIONS) as client:
            healthy = bool(client.screen(IMAGE).scores)
    finally:
        code = service.stop()
    total = sum(len(v) for v in outcomes.values())
    u99 = np.percentile(unloaded, 99)
    ok = outcomes["ok"]
    print(
        f"\nmax_queue {queue}, max_queue_wait_ms {wait_ms or 0}: "
        f"unloaded p50 {np.median(unloaded) * 1e3:.1f} ms, p99 {u99 * 1e3:.1f} ms; "
        f"capacity {cap:.1f} req/s (16 callers)"
    )
    print(
        f"  offered {rate:.0f} req/s ({args.factor:g}x {'the first' if reference else 'its'} "
        f"capacity) for {args.seconds:g} s: {total} requests, "
        f"{len(ok)} answered, {len(outcomes['refused'])} refused, "
        f"{len(outcomes['other'])} other errors"
    )
    if ok:
        p99 = np.percentile(ok, 99)
        print(
            f"  accepted: p50 {np.median(ok) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms = "
            f"{p99 / u99:.1f}x unloaded p99 (aim: within 3x)"
        )
    if outcomes["refused"]:
        print(
            f"  refusals: p99 time to refusal {np.percentile(outcomes['refused'], 99) * 1e3:.1f} ms"
        )
    print(f"  afterwards: screening {'works' if healthy else 'FAILS'}; exit code on SIGTERM {code}")
    return cap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--factor", type=float, default=4.0)
    parser.add_argument(
        "--configs", default="64,64:25,64:50", help="max_queue[:max_queue_wait_ms] values to try"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = pathlib.Path(tmp)
        ensure_default_guard(str(home))
        print("guard service on the default ensemble, one worker, chelsea.png (451x300)")
        # Every configuration gets the same offered load: `factor` x the first one's capacity
        # (a wait bound refuses some of the capacity probe's calls, so its own figure is lower).
        reference = None
        for config in args.configs.split(","):
            cap = run(config, args, home, reference)
            reference = reference or cap


if __name__ == "__main__":
    main()
