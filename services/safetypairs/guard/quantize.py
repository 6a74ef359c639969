"""Static int8 quantization of a guard (onnxruntime QDQ, per-channel weights), calibrated on
real images. onnxruntime only: no torch."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from safetypairs.errors import ModelError
from safetypairs.guard.sidecar import GuardSidecar, sidecar_path


class _Batches(CalibrationDataReader):
    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._items: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: b[None] if b.ndim == 3 else b} for b in batches
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def quantize_guard(
    onnx_path: Path, out_path: Path, calibration: Sequence[np.ndarray]
) -> GuardSidecar:
    """Write an int8 copy of the guard at `out_path` (with its sidecar) calibrated on
    `calibration` (preprocessed CHW arrays, as the engine makes them)."""
    if not calibration:
        raise ModelError("int8 quantization needs at least one calibration image")
    sidecar = GuardSidecar.read(sidecar_path(onnx_path))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out_path),
            _Batches(sidecar.input.name, calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    quantized = replace(
        sidecar,
        name=f"{sidecar.name}-int8",
        extra={
            **sidecar.extra,
            "quantized": {
                "format": "QDQ int8 static, per-channel",
                "calibration_images": len(calibration),
            },
        },
    )
    quantized.write(sidecar_path(out_path))
    return quantized
