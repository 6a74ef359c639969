"""Throughput of 1 vs 3 generator shards against the same services, as an Indexed Job runs
them: `safetypairs generate` processes with JOB_COMPLETION_INDEX / SAFETYPAIRS_SHARDS, each
writing its shard's dataset into an object store (a moto S3 server on loopback), against one
judge and one editor (embedded defaults, untrained) on this machine.

    python benchmarks/shard_scaling.py [--images 12] [--rounds 2] [--steps 2]

Each round runs the whole input once as one process, then as three processes at once (new
output locations each time), and prints the ratio of their throughputs (same work, so the
inverse ratio of wall times). On a cluster the services have GPUs of their own; here they share
the machine's cores with the generators, so the ratio says how much the shards' extra
concurrency fills the services, not how a cluster scales.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from generator_client_cpu import sources  # noqa: E402 - beside this file
from s3_server import S3Server  # noqa: E402 - the tests' real S3-API server (moto)
from tiny_stack import start_tiny_services  # noqa: E402


def run_shards(base: list[str], out: str, shards: int, env: dict[str, str]) -> float:
    """Wall seconds for `shards` generator processes, one per index, to finish."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [*base, "--out", f"{out}/shard-{i}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={
                **os.environ,
                **env,
                "JOB_COMPLETION_INDEX": str(i),
                "SAFETYPAIRS_SHARDS": str(shards),
            },
        )
        for i in range(shards)
    ]
    for p in processes:
        _, err = p.communicate()
        assert p.returncode in (0, 1), err.decode()[-2000:]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        folder = home / "images"
        folder.mkdir()
        sources(folder, args.images, 128)
        judge, edit = start_tiny_services(home, args.steps)
        s3 = S3Server.start(home / "moto.log")
        store = s3.env()
        try:
            s3.create_bucket("bench")
            # Criteria the untrained stack never meets: every unit runs all its attempts, so
            # the work is the same in every run.
            base = [
                sys.executable,
                "-m",
                "safetypairs.cli",
                "generate",
                str(folder),
                "--categories",
                "O6",
                "--directions",
                "to_unsafe",
                "--proposals",
                "2",
                "--attempts",
                "2",
                "--edit-steps",
                str(args.steps),
                "--margin",
                "0",
                "--judge-target",
                judge.grpc_target,
                "--edit-target",
                edit.grpc_target,
                "--no-progress",
            ]
            ratios = []
            for r in range(args.rounds):
                one = run_shards(base, f"s3://bench/r{r}-one", 1, store)
                three = run_shards(base, f"s3://bench/r{r}-three", 3, store)
                ratios.append(one / three)
                print(
                    f"round {r}: 1 shard {one:.1f} s, 3 shards {three:.1f} s -> throughput "
                    f"ratio 3:1 = {one / three:.2f}",
                    flush=True,
                )
            print(f"ratios {', '.join(f'{x:.2f}' for x in ratios)}; load {os.getloadavg()}")
        finally:
            s3.stop()
            judge.stop()
            edit.stop()


if __name__ == "__main__":
    main()
