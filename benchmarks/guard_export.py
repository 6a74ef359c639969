"""A guard at real size through the whole lifecycle, measured in one run: a CLIP ViT-B/32
vision tower (random weights: no hub here, but the real architecture and size) with a head
trained on the demonstration set, exported to ONNX; eager PyTorch vs onnxruntime fp32 at
batch 1 and batch 32, then int8 (dynamic and static) and fp16 copies vs fp32: speed and how
often they decide like fp32.

    python benchmarks/guard_export.py [--requests 30]

Agreement is measured on real photos (scikit-image, scikit-learn) and held-out demonstration
images the head was not trained on; static int8 is calibrated on the training images.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import skimage
import sklearn
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.guard.engine import GuardEngine
from safetypairs.guard.quantize import decision_agreement, make_variant
from safetypairs.training.demo_data import make_training_set
from safetypairs.training.encoders import load_encoder
from safetypairs.training.train import EncoderHeadGuard, TrainConfig, train_guard

LIMITS = ImageLimits(10**9, 10**9)


def p50(call: Callable[[], object], n: int) -> float:
    call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="timed calls per measurement")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        config = CLIPVisionConfig()  # the defaults are ViT-B/32 at 224 px
        config.safetypairs_untrained = True
        CLIPVisionModel(config).save_pretrained(root / "vit-b32")
        labelled, pairs = make_training_set(root / "data")
        make_training_set(root / "held-out", pairs=0, singles=16, seed=99)
        t = time.perf_counter()
        result = train_guard(
            TrainConfig(
                encoder=str(root / "vit-b32"),
                out=root / "guard",
                data=[labelled],
                pairs=[pairs],
                margin=1.0,
            )
        )
        build_s = time.perf_counter() - t
        fp32 = GuardEngine.load(result.onnx_path)

        def arrays(paths: list[pathlib.Path]) -> list[np.ndarray]:
            out = []
            for p in paths:
                try:
                    out.append(fp32.preprocess(decode_image(p.read_bytes(), LIMITS)))
                except Exception:
                    continue
            return out

        ski = pathlib.Path(skimage.__file__).parent / "data"
        skl = pathlib.Path(sklearn.__file__).parent / "datasets" / "images"
        photos = arrays(
            sorted(ski.glob("*.png")) + sorted(ski.glob("*.jpg")) + sorted(skl.glob("*.jpg"))
        )
        demo = arrays(sorted((root / "held-out" / "img").glob("*.png")))
        calibration = arrays(sorted((root / "data" / "img").glob("*.png")))
        evaluation = photos + demo

        encoder = load_encoder(str(root / "vit-b32"))
        import onnx  # noqa: F401  (fp16 conversion)

        # Same graph in eager mode: the encoder plus a head of the same shape.
        eager = EncoderHeadGuard(encoder.module, torch.nn.Linear(encoder.dim, 1)).eval()
        one = torch.from_numpy(evaluation[0][None])
        batch32 = np.stack((evaluation * 3)[:32])
        with torch.no_grad():
            eager_b1 = p50(lambda: eager(one), args.requests)
            eager_b32 = p50(lambda: eager(torch.from_numpy(batch32)), max(3, args.requests // 6))
        ort_b1 = p50(lambda: fp32.infer([evaluation[0]]), args.requests)
        ort_b32 = p50(lambda: fp32.infer(list(batch32)), max(3, args.requests // 6))

        variants = {}
        for variant in ("int8-dynamic", "int8-static", "fp16"):
            out = root / variant / "guard.onnx"
            make_variant(result.onnx_path, out, variant, calibration)
            engine = GuardEngine.load(out)
            variants[variant] = (
                p50(lambda e=engine: e.infer([evaluation[0]]), args.requests),
                p50(lambda e=engine: e.infer(list(batch32)), max(3, args.requests // 6)),
                decision_agreement(fp32, engine, evaluation),
                out.stat().st_size,
            )

    print(
        f"CLIP ViT-B/32 vision tower (random weights, {encoder.dim}-d pooled) + linear head "
        f"trained on {result.sidecar.extra['training']['images']} demonstration images; "
        f"train + export {build_s:.0f} s; torch threads {torch.get_num_threads()}"
    )
    for name, b1, b32 in (
        ("eager PyTorch", eager_b1, eager_b32),
        ("onnxruntime fp32", ort_b1, ort_b32),
    ):
        print(f"  {name:<16} batch 1 {b1 * 1e3:8.1f} ms   batch 32 {32 / b32:6.1f} img/s")
    print(
        f"  onnxruntime / eager: {eager_b1 / ort_b1:.2f}x faster at batch 1, "
        f"{eager_b32 / ort_b32:.2f}x the throughput at batch 32 (aim: >= 1.5x at batch 1)"
    )
    print(
        f"\n  variant vs fp32 on {len(evaluation)} images ({len(photos)} real photos, "
        f"{len(demo)} held-out demonstration images)"
    )
    for name, (b1, b32, agreement, size) in variants.items():
        print(
            f"  {name:<13} batch 1 {b1 * 1e3:7.1f} ms ({ort_b1 / b1:.2f}x fp32)  batch 32 "
            f"{32 / b32:6.1f} img/s ({ort_b32 / b32:.2f}x)  decisions agree "
            f"{agreement.decisions_agree:.1%}  max |diff| {agreement.max_abs_diff:.3f}  "
            f"{size / 1e6:.0f} MB"
        )
    print("  (aim: int8 >= 2x faster than fp32 with >= 99% decision agreement)")


if __name__ == "__main__":
    main()
