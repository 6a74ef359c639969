"""Guard latency at batch 1: the engine called in-process vs the running service over gRPC
and over HTTP, measured in one run, with the ratios between them.

    python benchmarks/guard_latency.py [--requests 400] [--model REF]

The three paths are measured in interleaved blocks so that drift on a noisy machine hits them
alike. "in-process" is the work the service does per request (decode + preprocess + ONNX
run) without any protocol, queue or batcher; "model run" is the ONNX run(s) alone; "gRPC
no-op" is a GetModelInfo round trip, the floor any Python gRPC call pays here.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import skimage
from PIL import Image

from safetypairs.client import GuardClient
from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.guard.artifact import load_guard
from safetypairs.guard.default_model import ensure_default_guard
from safetypairs.serving.launcher import GUARD_SERVICE, ServiceProcess
from safetypairs.serving.settings import GuardSettings


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def images() -> dict[str, bytes]:
    photo = (Path(skimage.__file__).parent / "data" / "chelsea.png").read_bytes()
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 40, 200)).save(buf, format="PNG")
    return {"64x64 PNG": buf.getvalue(), "chelsea 451x300 PNG": photo}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="calls per path per image")
    parser.add_argument("--block", type=int, default=25, help="calls per interleaved block")
    parser.add_argument("--model", default="", help="guard reference; default: embedded default")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ref = args.model or str(ensure_default_guard(str(home)))
        engine = load_guard(ref)
        settings = GuardSettings()
        limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)
        service = ServiceProcess.start(
            GUARD_SERVICE,
            home / "guard.log",
            {"SAFETYPAIRS_GUARD_MODEL": ref, "BENTOML_HOME": str(home / "bentoml")},
        )
        try:
            with (
                GuardClient(service.grpc_target) as grpc_client,
                httpx.Client(base_url=service.http_url, timeout=30) as http,
            ):
                print(
                    f"guard {engine.card.name}:{engine.card.version} "
                    f"({'UNTRAINED' if engine.card.untrained else 'real weights'}), "
                    f"providers {engine.providers}, {args.requests} calls per path, batch 1"
                )
                for label, data in images().items():
                    pixels = engine.preprocess(decode_image(data, limits))
                    paths: dict[str, Callable[[], object]] = {
                        "model run": lambda p=pixels: engine.run([p]),
                        "in-process": lambda d=data: engine.run(
                            [engine.preprocess(decode_image(d, limits))]
                        ),
                        "gRPC": lambda d=data: grpc_client.screen(d),
                        # The fixed cost of a Python gRPC round trip with no image work.
                        "gRPC no-op": grpc_client.model_info,
                        "HTTP": lambda d=data: http.post(
                            "/v1/screen", files={"image": ("i.png", d)}
                        ).raise_for_status(),
                    }
                    report(label, measure(paths, args.requests, args.block))
        finally:
            service.stop()


def measure(paths: dict[str, Callable[[], object]], n: int, block: int) -> dict[str, list[float]]:
    for call in paths.values():  # warm up every path
        for _ in range(20):
            call()
    times: dict[str, list[float]] = {name: [] for name in paths}
    while len(times["HTTP"]) < n:
        for name, call in paths.items():
            for _ in range(block):
                t = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t)
    return times


def report(label: str, times: dict[str, list[float]]) -> None:
    base = statistics.median(times["in-process"])
    print(f"\n{label}")
    header = f"{'p50 ms':>8} {'p99 ms':>8} {'p50 / in-process':>17} {'p50 overhead ms':>16}"
    print(f"  {'path':<13} {header}")
    for name, values in times.items():
        p50, p99 = percentile(values, 50) * 1e3, percentile(values, 99) * 1e3
        print(
            f"  {name:<13} {p50:>8.3f} {p99:>8.3f} {p50 / (base * 1e3):>17.2f} "
            f"{p50 - base * 1e3:>16.3f}"
        )
    grpc_over = (statistics.median(times["gRPC"]) - base) * 1e3
    print(
        f"  gRPC overhead over in-process at p50: {grpc_over:.3f} ms "
        f"({'under' if grpc_over < 1.0 else 'OVER'} the 1 ms aim)"
    )


if __name__ == "__main__":
    main()
