"""The pair generator's own cost: CPU seconds per unit in the generator's process, against
instant services (benchmarks/stub_services.py, a process of their own), so the figure is the
client side only: gRPC calls, image hashing and storing, the SSIM preservation check, the
commits. Aim: under 5 ms per unit, i.e. one generator pod can drive far more editor replicas
(5-20 s per edit) than a cluster has.

    python benchmarks/generator_client_cpu.py [--units 60] [--size 512] [--rounds 2]

Each round generates the same units once into a local folder and once into an object store (a
moto S3 server in its own process on loopback), interleaved, and prints CPU ms per unit (all
threads of this process: gRPC's, the store client's event loop) and wall time. One unit here is
one source image made into one accepted pair: a null edit, two ratings, one proposal, one edit,
one SSIM comparison, three images stored and one commit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from safetypairs.client import AsyncEditClient, AsyncJudgeClient
from safetypairs.contract.policy import default_policy
from safetypairs.pairs.criteria import TO_UNSAFE, Criteria
from safetypairs.pairs.pipeline import GenerationConfig, PairGenerator
from safetypairs.pairs.similarity import compare
from safetypairs.pairs.store import read_dataset
from safetypairs.serving.launcher import free_port
from safetypairs.training.demo_data import sample_photos

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from s3_server import S3Server  # noqa: E402 - the tests' real S3-API server (moto)


def sources(folder: Path, n: int, size: int) -> list[Path]:
    """`n` distinct photos: random crops of scikit-image's sample photos, `size` px square."""
    rng = random.Random(20)
    photos = [Image.open(p).convert("RGB") for p in sample_photos(4)]
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        side = rng.randint(min(w, h) // 2, min(w, h))
        x, y = rng.randint(0, w - side), rng.randint(0, h - side)
        path = folder / f"{i:04d}.png"
        photo.crop((x, y, x + side, y + side)).resize((size, size)).save(path)
        paths.append(path)
    return paths


def start(args: list[str], says_ready: bool = False) -> subprocess.Popen[str]:
    """A Python process; its stdout is read only when it says "ready" (else discarded)."""
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE if says_ready else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def run_once(target: str, out: str, paths: list[Path]) -> tuple[float, float, int]:
    """(CPU seconds of this process, wall seconds, units accepted) for one generation run."""
    config = GenerationConfig(
        policy=default_policy(),
        categories=("O6",),
        directions=(TO_UNSAFE,),
        proposals=1,
        attempts=1,
        criteria=Criteria(0.5, 0.1, 0.85, 0.35),
        judge_concurrency=4,
        edit_concurrency=4,
        units_in_flight=9,
    )
    async with AsyncJudgeClient(target) as judge, AsyncEditClient(target) as editor:
        cpu, wall = time.process_time(), time.perf_counter()
        progress = await PairGenerator(judge, editor, out, config).run(paths)
        return time.process_time() - cpu, time.perf_counter() - wall, progress.accepted


def preservation_check_ms(dataset: Path) -> float:
    """CPU ms per unit of the SSIM preservation check alone, redone on the dataset's pairs."""
    ds = read_dataset(dataset)
    pairs = [(ds.read_image(r.a.image), ds.read_image(r.b.image)) for r in ds.pairs("accepted")]
    started = time.process_time()
    for kept, edit in pairs:
        compare(kept, edit)
    return 1000 * (time.process_time() - started) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=60)
    parser.add_argument("--size", type=int, default=512, help="source side in pixels")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    stub_port = free_port()
    stub = start([str(HERE / "stub_services.py"), str(stub_port)], says_ready=True)
    with tempfile.TemporaryDirectory() as work:
        s3 = S3Server.start(Path(work) / "moto.log")
        try:
            assert stub.stdout is not None and stub.stdout.readline() == "ready\n"
            s3.create_bucket("bench")
            os.environ.update(s3.env())
            folder = Path(work) / "src"
            folder.mkdir()
            paths = sources(folder, args.units, args.size)
            target = f"127.0.0.1:{stub_port}"
            asyncio.run(run_once(target, str(Path(work) / "warm"), paths[:4]))  # imports, JIT
            rows = []
            for r in range(args.rounds):
                for kind in ("folder", "s3"):
                    out = str(Path(work) / f"{kind}{r}") if kind == "folder" else f"s3://bench/r{r}"
                    cpu, wall, units = asyncio.run(run_once(target, out, paths))
                    assert units == args.units, f"{units} of {args.units} units accepted"
                    rows.append((kind, cpu, units))
                    print(
                        f"round {r} {kind:6}: {units} units  CPU {1000 * cpu / units:6.2f} ms/unit"
                        f"  wall {1000 * wall / units:6.2f} ms/unit",
                        flush=True,
                    )
            check = preservation_check_ms(Path(work) / "folder0")
        finally:
            stub.terminate()
            stub.wait(10)
            s3.stop()
    for kind in ("folder", "s3"):
        per_unit = min(1000 * c / u for k, c, u in rows if k == kind)
        print(
            f"{kind}: CPU per unit, best of {args.rounds} rounds: {per_unit:.2f} ms, of which "
            f"the preservation check (SSIM) {check:.2f} ms: {per_unit - check:.2f} ms without"
        )
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
