"""Finding the guard artifact (.onnx + sidecar) a reference names."""

from __future__ import annotations

from pathlib import Path

from safetypairs.errors import ModelError
from safetypairs.guard.sidecar import sidecar_path
from safetypairs.serving.model_refs import resolve_model_ref


def guard_onnx_path(ref: str) -> Path:
    """A reference to a .onnx file, or to a directory holding exactly one .onnx with sidecar."""
    path = resolve_model_ref(ref)
    if path.is_file():
        if path.suffix != ".onnx":
            raise ModelError(f"guard model {path} is not a .onnx file")
        return path
    candidates = sorted(p for p in path.glob("*.onnx") if sidecar_path(p).is_file())
    if len(candidates) != 1:
        found = ", ".join(p.name for p in path.glob("*.onnx")) or "none"
        raise ModelError(
            f"guard model directory {path} must hold exactly one .onnx file with a .json "
            f"sidecar of the same name (found .onnx: {found})"
        )
    return candidates[0]
