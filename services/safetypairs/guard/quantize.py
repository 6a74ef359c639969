"""Smaller and faster copies of a guard: int8 for CPUs (static, calibrated on real images, or
dynamic), fp16 for GPUs; and how often a copy decides like the fp32 original. onnxruntime
(and, for fp16, the `onnx` package) only: no torch."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)

from safetypairs.contract.errors import InvalidInput, ModelError
from safetypairs.guard.engine import GuardEngine
from safetypairs.guard.sidecar import GuardSidecar, sidecar_path

VARIANTS = ("int8-static", "int8-dynamic", "fp16")


class _Batches(CalibrationDataReader):
    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._items: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: b[None] if b.ndim == 3 else b} for b in batches
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def make_variant(
    onnx_path: Path,
    out_path: Path,
    variant: str,
    calibration: Sequence[np.ndarray] = (),
) -> GuardSidecar:
    """Write `variant` of the guard at `out_path` with its sidecar. int8-static needs
    `calibration`: preprocessed arrays as the engine makes them, from real images."""
    if variant not in VARIANTS:
        raise InvalidInput(f"variant must be one of {VARIANTS}, not {variant!r}")
    if variant == "int8-static" and not calibration:
        raise ModelError("int8-static quantization needs at least one calibration image")
    sidecar = GuardSidecar.read(sidecar_path(onnx_path))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        if variant == "fp16":
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16

            # Inputs and outputs stay fp32 so clients and the engine need not change.
            model = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
            onnx.save(model, str(out_path))
        else:
            quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
            if variant == "int8-static":
                quantize_static(
                    str(prepared),
                    str(out_path),
                    _Batches(sidecar.input.name, calibration),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
            else:
                quantize_dynamic(str(prepared), str(out_path), weight_type=QuantType.QInt8)
    described = {
        "int8-static": "int8 static QDQ, per-channel weights",
        "int8-dynamic": "int8 dynamic (weights int8, activations quantized at run time)",
        "fp16": "fp16 weights and compute, fp32 inputs and outputs",
    }[variant]
    derived = replace(
        sidecar,
        name=f"{sidecar.name}-{variant}",
        extra={
            **sidecar.extra,
            "variant": {
                "kind": variant,
                "format": described,
                "calibration_images": len(calibration),
            },
        },
    )
    derived.write(sidecar_path(out_path))
    return derived


def quantize_guard(
    onnx_path: Path, out_path: Path, calibration: Sequence[np.ndarray]
) -> GuardSidecar:
    """int8 static copy calibrated on `calibration` (the CPU default)."""
    return make_variant(onnx_path, out_path, "int8-static", calibration)


@dataclass(frozen=True)
class Agreement:
    images: int
    decisions_agree: float  # fraction of (image, category) decisions equal to fp32's
    max_abs_diff: float


def decision_agreement(
    reference: GuardEngine, other: GuardEngine, batch: Sequence[np.ndarray]
) -> Agreement:
    a, b = reference.infer(batch), other.infer(batch)
    thresholds = np.array([reference.sidecar.thresholds[c] for c in reference.categories])
    agree = float(np.mean((a >= thresholds) == (b >= thresholds)))
    return Agreement(len(batch), agree, float(np.max(np.abs(a - b))))
