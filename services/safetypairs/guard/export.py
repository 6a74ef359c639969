"""Export an image classifier (pixels -> per-category probabilities) to ONNX with its sidecar,
then check that onnxruntime agrees with torch. Build side only: needs the `models` extra."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from safetypairs.contract.errors import ModelError
from safetypairs.guard.sidecar import GuardSidecar, sidecar_path

log = logging.getLogger(__name__)

OPSET = 18


def export_onnx(
    model: torch.nn.Module,
    onnx_path: Path,
    *,
    example: torch.Tensor,
    input_name: str,
    output_name: str,
    atol: float,
) -> float:
    """Export `model` (one image batch in, one tensor out) with a dynamic batch axis, then run
    it in onnxruntime on `example` (a batch of at least two, real images where there are any)
    and return the largest difference from torch. When it exceeds `atol`: ModelError, and
    nothing is written at `onnx_path`."""
    import onnxruntime as ort

    model = model.eval()
    # The exporter warns about optional torchvision ops this graph does not use.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecation notices
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=({0: batch},),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        staged = onnx_path.with_name(f".{onnx_path.name}.staged")
        program.save(str(staged))
        expected = model(example).numpy()
    try:
        session = ort.InferenceSession(str(staged), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {input_name: example.numpy()})
        diff = float(np.max(np.abs(got - expected)))
        if diff > atol:
            raise ModelError(
                f"ONNX export to {onnx_path} differs from torch by {diff:.3g} > {atol:g}; "
                "nothing written"
            )
        os.replace(staged, onnx_path)
    finally:
        staged.unlink(missing_ok=True)
    return diff


def export_guard(
    model: torch.nn.Module,
    sidecar: GuardSidecar,
    onnx_path: Path,
    *,
    example: torch.Tensor,
    atol: float = 1e-4,
) -> GuardSidecar:
    """Write `onnx_path` and its sidecar after a parity check (see export_onnx); the measured
    difference goes into the sidecar's `extra.parity_max_abs_diff`. Returns the sidecar."""
    diff = export_onnx(
        model,
        onnx_path,
        example=example,
        input_name=sidecar.input.name,
        output_name=sidecar.output.name,
        atol=atol,
    )
    log.info("exported %s to %s (max |onnx - torch| = %.2e)", sidecar.name, onnx_path, diff)
    written = replace(sidecar, opset=OPSET, extra={**sidecar.extra, "parity_max_abs_diff": diff})
    written.write(sidecar_path(onnx_path))
    return written
