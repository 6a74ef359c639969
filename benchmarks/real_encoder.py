"""EfficientNet-Lite0 (real ImageNet weights) on real photos, measured in one run:
eager PyTorch vs onnxruntime fp32 vs onnxruntime int8 at batch 1, and how far int8 changes
the answers.

    python benchmarks/real_encoder.py [--requests 200]

Photos: the colour and greyscale photos scikit-image ships, plus scikit-learn's two sample
photos. int8 is calibrated on the first half of the photos and checked on all of them, the
held-out half reported on its own. Two graphs are measured: the guard (classifier + baseline
head, O6 probability) and the bare classifier (ImageNet logits), whose top-1 agreement says
more than the guard's O6 decisions on photos that show no weapons.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import skimage
import sklearn
import torch

from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.contract.policy import default_policy
from safetypairs.guard.baseline_head import ImageNetBaselineHead, default_class_map
from safetypairs.guard.default_model import ensure_default_guard
from safetypairs.guard.engine import GuardEngine
from safetypairs.guard.export import export_onnx
from safetypairs.guard.quantize import quantize_guard
from safetypairs.guard.sidecar import sidecar_path
from safetypairs.vision.efficientnet import load_efficientnet_lite0

SKIMAGE = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "color.png",
    "camera.png",
    "coins.png",
    "moon.png",
    "brick.png",
    "grass.png",
    "gravel.png",
]


def photos() -> list[pathlib.Path]:
    ski = pathlib.Path(skimage.__file__).parent / "data"
    skl = pathlib.Path(sklearn.__file__).parent / "datasets" / "images"
    return [ski / n for n in SKIMAGE] + [skl / "china.jpg", skl / "flower.jpg"]


def p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


def time_paths(paths: dict[str, Callable[[], object]], n: int, block: int = 20) -> dict[str, float]:
    for call in paths.values():
        for _ in range(10):
            call()
    times: dict[str, list[float]] = {k: [] for k in paths}
    while len(next(iter(times.values()))) < n:
        for name, call in paths.items():
            for _ in range(block):
                t = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t)
    return {k: p50_ms(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="timed calls per path")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())  # torch's default (all cores), stated below

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = pathlib.Path(tmp)
        guard_path = ensure_default_guard(str(tmpdir))
        fp32 = GuardEngine.load(guard_path)
        limits = ImageLimits(10**9, 10**9)
        files = photos()
        x = np.stack([fp32.preprocess(decode_image(p.read_bytes(), limits)) for p in files])
        calib, held_out = x[: len(x) // 2], slice(len(x) // 2, None)

        net = load_efficientnet_lite0()
        head = ImageNetBaselineHead(net, default_class_map(default_policy())).eval()
        logits_path = tmpdir / "classifier" / "classifier.onnx"
        export_onnx(
            net,
            logits_path,
            example=torch.from_numpy(x[:2]),
            input_name="pixel_values",
            output_name="logits",
            atol=1e-3,
        )
        # Reuse the guard's sidecar so quantize_guard can name the input.
        sidecar_path(logits_path).write_text(sidecar_path(guard_path).read_text())
        int8_guard_path = tmpdir / "int8" / "guard.onnx"
        quantize_guard(guard_path, int8_guard_path, list(calib))
        int8_logits_path = tmpdir / "int8-classifier" / "classifier.onnx"
        quantize_guard(logits_path, int8_logits_path, list(calib))
        int8 = GuardEngine.load(int8_guard_path)

        def session(path: pathlib.Path) -> ort.InferenceSession:
            return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        logits_fp32, logits_int8 = session(logits_path), session(int8_logits_path)
        with torch.no_grad():
            torch_logits = net(torch.from_numpy(x)).numpy()
            torch_o6 = head(torch.from_numpy(x)).numpy()[:, 0]
        ort_logits = logits_fp32.run(None, {"pixel_values": x})[0]
        q_logits = logits_int8.run(None, {"pixel_values": x})[0]
        o6_fp32, o6_int8 = fp32.infer(list(x))[:, 0], int8.infer(list(x))[:, 0]

        one = x[3:4]  # the rocket, at batch 1
        one_t = torch.from_numpy(one)

        def eager() -> None:
            with torch.no_grad():
                head(one_t)

        latency = time_paths(
            {
                "eager PyTorch": eager,
                "onnxruntime fp32": lambda: fp32.infer([one[0]]),
                "onnxruntime int8": lambda: int8.infer([one[0]]),
            },
            args.requests,
        )

    print(
        f"EfficientNet-Lite0 guard (classifier + baseline head), {len(files)} real photos, "
        f"torch threads {torch.get_num_threads()}, onnxruntime {ort.__version__} CPU"
    )
    print("\nlatency at batch 1 (224x224), p50 of interleaved blocks")
    base = latency["onnxruntime fp32"]
    for name, ms in latency.items():
        print(f"  {name:<18} {ms:>7.2f} ms   {ms / base:>5.2f}x onnxruntime fp32")
    print(
        f"  eager / onnxruntime fp32: {latency['eager PyTorch'] / base:.2f}x;  "
        f"fp32 / int8: {base / latency['onnxruntime int8']:.2f}x"
    )

    print("\nparity, torch vs onnxruntime fp32, all photos")
    print(
        f"  max |logit diff| {np.max(np.abs(torch_logits - ort_logits)):.2e};  "
        f"max |O6 diff| {np.max(np.abs(torch_o6 - o6_fp32)):.2e};  top-1 agreement "
        f"{np.mean(torch_logits.argmax(1) == ort_logits.argmax(1)):.0%}"
    )

    def agreement(sel: slice | slice) -> str:
        top1 = np.mean(ort_logits[sel].argmax(1) == q_logits[sel].argmax(1))
        o6 = np.mean((o6_fp32[sel] >= 0.5) == (o6_int8[sel] >= 0.5))
        n = len(o6_fp32[sel])
        return (
            f"{n:>2} photos: ImageNet top-1 agreement {top1:.0%}, O6 decision agreement "
            f"{o6:.0%}, max |O6 diff| {np.max(np.abs(o6_fp32[sel] - o6_int8[sel])):.3f}"
        )

    print("\nint8 vs fp32 (onnxruntime)")
    print(f"  all      {agreement(slice(None))}")
    print(f"  held-out {agreement(held_out)}")
    flagged = int(np.sum(o6_fp32 >= 0.5))
    print(
        f"  photos flagged O6 by fp32 at 0.5: {flagged}; highest O6: "
        f"{files[int(np.argmax(o6_fp32))].name} ({o6_fp32.max():.3f} fp32, "
        f"{o6_int8[int(np.argmax(o6_fp32))]:.3f} int8)"
    )


if __name__ == "__main__":
    main()
