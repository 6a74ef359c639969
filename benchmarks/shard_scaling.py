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
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from PIL import Image

from safetypairs.edit.default_model import ensure_default_editor
from safetypairs.judge.default_model import ensure_default_judge
from safetypairs.serving.launcher import EDIT_SERVICE, JUDGE_SERVICE, ServiceProcess, free_port
from safetypairs.training.demo_data import sample_photos

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from generator_client_cpu import start, wait_port  # noqa: E402 - beside this file


def sources(folder: Path, n: int) -> None:
    rng = random.Random(3)
    photos = [Image.open(p).convert("RGB") for p in sample_photos(4)]
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        side = rng.randint(min(w, h) // 2, min(w, h))
        x, y = rng.randint(0, w - side), rng.randint(0, h - side)
        photo.crop((x, y, x + side, y + side)).resize((128, 128)).save(folder / f"{i:03d}.png")


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
        sources(folder, args.images)
        ensure_default_judge(str(home))
        ensure_default_editor(str(home))
        env = {
            "SAFETYPAIRS_HOME": str(home),
            "BENTOML_HOME": str(home / "bentoml"),
            "SAFETYPAIRS_EDIT_STEPS": str(args.steps),
            "SAFETYPAIRS_TORCH_THREADS": "1",
        }
        judge = ServiceProcess.start(JUDGE_SERVICE, home / "judge.log", env)
        edit = ServiceProcess.start(EDIT_SERVICE, home / "edit.log", env)
        s3_port = free_port()
        store = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3 = start(["-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)])
        try:
            wait_port(s3_port)
            boto3.client(
                "s3",
                endpoint_url=store["AWS_ENDPOINT_URL"],
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
                region_name="us-east-1",
            ).create_bucket(Bucket="bench")
            # Criteria the untrained stack never meets: every unit runs all its attempts, so
            # the work is the same in every run.
            base = [
                sys.executable,
                "-m",
                "safetypairs.cli",
                "generate",
                "--images",
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
                "--quiet",
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
            s3.terminate()
            judge.stop()
            edit.stop()


if __name__ == "__main__":
    main()
