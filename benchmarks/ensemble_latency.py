"""The default ensemble guard (EfficientNet-Lite0 baseline + open_nsfw) against its slowest
member alone, in-process, measured in one run: p50/p99 at batch 1 and throughput at batch 16.

    python benchmarks/ensemble_latency.py [--requests 200] [--intra-op-threads N]

The ensemble runs its members one after the other in the calling thread, each session with the
intra-op threads of every usable core and no spinning (issue 22; before, members ran
concurrently with cores // members threads each); "members sequential" calls the members'
sessions directly, without the ensemble's fusion; "alone, all cores" is a member loaded on its
own with the same session options. Inputs are real photos (scikit-image), preprocessed once.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable

import numpy as np

from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.guard.artifact import load_guard
from safetypairs.guard.default_model import ensure_default_guard
from safetypairs.guard.engine import GuardEngine
from safetypairs.guard.ensemble import EnsembleEngine
from safetypairs.training.demo_data import sample_photos


def timed(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="timed batch-1 calls per path")
    parser.add_argument("--intra-op-threads", type=int, default=0, help="0 = the usable cores")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        manifest = ensure_default_guard(tmp)
        ensemble = load_guard(str(manifest), intra_op_threads=args.intra_op_threads)
        assert isinstance(ensemble, EnsembleEngine)
        members = ensemble.member_engines
        limits = ImageLimits(10**9, 10**9)
        items = [
            ensemble.preprocess(decode_image(p.read_bytes(), limits)) for p in sample_photos(4)
        ]
        names = list(members)
        specs = {m["name"]: m for m in json.loads(manifest.read_text())["members"]}
        standalone = {
            n: GuardEngine.load(
                e.onnx_path,
                sidecar_file=manifest.parent / specs[n]["sidecar"]
                if "sidecar" in specs[n]
                else None,
            )
            for n, e in members.items()
        }

        def member(i: int, batch: list) -> Callable[[], object]:
            engine = members[names[i]]
            return lambda: engine.infer([item[i] for item in batch])

        def sequential(batch: list) -> Callable[[], object]:
            calls = [member(i, batch) for i in range(len(names))]
            return lambda: [c() for c in calls]

        one = items[3:4]
        sixteen = (items * 4)[:16]

        def alone(n: str, batch: list) -> Callable[[], object]:
            i = names.index(n)
            return lambda: standalone[n].infer([item[i] for item in batch])

        paths = {
            **{f"{n} alone, all cores": alone(n, one) for n in names},
            **{f"{n} alone": member(i, one) for i, n in enumerate(names)},
            "ensemble": lambda: ensemble.run(one),
            "members sequential": sequential(one),
        }
        batch_paths = {
            **{f"{n} alone, all cores": alone(n, sixteen) for n in names},
            **{f"{n} alone": member(i, sixteen) for i, n in enumerate(names)},
            "ensemble": lambda: ensemble.run(sixteen),
            "members sequential": sequential(sixteen),
        }
        for call in [*paths.values(), *batch_paths.values()]:
            for _ in range(3):
                call()
        lat: dict[str, list[float]] = {k: [] for k in paths}
        block = 20
        while len(lat["ensemble"]) < args.requests:  # interleaved blocks
            for name, call in paths.items():
                lat[name] += timed(call, block)
        thr: dict[str, list[float]] = {k: [] for k in batch_paths}
        for _ in range(4):
            for name, call in batch_paths.items():
                thr[name] += timed(call, 3)

    threads = args.intra_op_threads or "all usable cores"
    print(f"default ensemble guard, members {names}, intra-op threads per member: {threads}")
    slowest = max(names, key=lambda n: np.median(lat[f"{n} alone"]))
    base = np.median(lat[f"{slowest} alone"])
    print(f"\nbatch 1 latency (slowest member alone: {slowest})")
    print(f"  {'path':<32} {'p50 ms':>8} {'p99 ms':>8} {'p50 / slowest':>14}")
    for name, values in lat.items():
        p50, p99 = np.median(values), np.percentile(values, 99)
        print(f"  {name:<32} {p50 * 1e3:>8.2f} {p99 * 1e3:>8.2f} {p50 / base:>14.2f}")
    tbase = 16 / np.median(thr[f"{slowest} alone"])
    print("\nbatch 16 throughput (median of 12 batches)")
    print(f"  {'path':<32} {'images/s':>9} {'/ slowest':>10}")
    for name, values in thr.items():
        ips = 16 / np.median(values)
        print(f"  {name:<32} {ips:>9.1f} {ips / tbase:>10.2f}")
    ensemble_p50 = np.median(lat["ensemble"])
    full = np.median(lat[f"{slowest} alone, all cores"])
    print(
        f"\nensemble p50 / slowest member p50: {ensemble_p50 / base:.2f} at the same threads, "
        f"{ensemble_p50 / full:.2f} against the member alone on all cores (aim: within 1.3)"
    )


if __name__ == "__main__":
    main()
