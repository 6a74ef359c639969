"""int8 static quantization of the real default guard, calibrated and checked on real photos."""

import numpy as np

from safetypairs.guard.engine import GuardEngine
from safetypairs.guard.quantize import quantize_guard
from safetypairs.serving.images import ImageLimits, decode_image

LIMITS = ImageLimits(max_bytes=10**8, max_pixels=10**8)


def test_int8_guard_keeps_the_decisions(default_guard_onnx, sample_photos, tmp_path):
    fp32 = GuardEngine.load(default_guard_onnx)
    x = [fp32.preprocess(decode_image(p.read_bytes(), LIMITS)) for p in sample_photos]
    out = tmp_path / "int8" / "guard.onnx"
    card = quantize_guard(default_guard_onnx, out, x)
    assert card.name == "imagenet-baseline-guard-int8"
    assert card.extra["quantized"]["calibration_images"] == len(x)
    assert out.stat().st_size < 0.4 * default_guard_onnx.stat().st_size
    int8 = GuardEngine.load(out)
    a, b = fp32.infer(x)[:, 0], int8.infer(x)[:, 0]
    assert np.array_equal(a >= 0.5, b >= 0.5)
    assert np.argmax(a) == np.argmax(b)  # the rocket stays the most weapon-like photo
    assert np.max(np.abs(a - b)) < 0.1
