"""Finding and loading the guard a reference names: one ONNX graph with its sidecar, or an
ensemble manifest naming several."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from safetypairs.contract.errors import ModelError
from safetypairs.guard.sidecar import MANIFEST, sidecar_path
from safetypairs.serving.model_refs import resolve_model_ref
from safetypairs.serving.settings import GuardSettings

if TYPE_CHECKING:
    from safetypairs.guard.outputs import GuardModel


def guard_artifact_path(ref: str) -> Path:
    """A .onnx file (sidecar beside it), an ensemble manifest, or a directory holding exactly
    one of those: an `ensemble.json`, else one .onnx with its sidecar."""
    path = resolve_model_ref(ref)
    if path.is_file():
        if path.suffix not in (".onnx", ".json"):
            raise ModelError(f"guard model {path} is neither a .onnx file nor a manifest")
        return path
    if (path / MANIFEST).is_file():
        return path / MANIFEST
    candidates = sorted(p for p in path.glob("*.onnx") if sidecar_path(p).is_file())
    if len(candidates) != 1:
        found = ", ".join(p.name for p in path.glob("*.onnx")) or "none"
        raise ModelError(
            f"guard model directory {path} must hold an {MANIFEST} or exactly one .onnx file "
            f"with a .json sidecar of the same name (found .onnx: {found})"
        )
    return candidates[0]


def load_guard(ref: str, *, providers: Sequence[str] = (), intra_op_threads: int = 0) -> GuardModel:
    # Imported here: `safetypairs serve` resolves the artifact (above) before it hands over to
    # BentoML, and need not pay for importing onnxruntime, numpy and Pillow to do so.
    from safetypairs.guard.engine import GuardEngine
    from safetypairs.guard.ensemble import EnsembleEngine

    path = guard_artifact_path(ref)
    engine = EnsembleEngine if path.suffix == ".json" else GuardEngine
    return engine.load(path, providers=providers, intra_op_threads=intra_op_threads)


def load_configured_guard(settings: GuardSettings) -> GuardModel:
    """The guard the settings name, or the embedded default (built on first use)."""
    from safetypairs.guard.default_model import ensure_default_guard

    ref = settings.guard_model or str(ensure_default_guard(settings.home_dir()))
    providers = [p.strip() for p in settings.ort_providers.split(",") if p.strip()]
    return load_guard(ref, providers=providers, intra_op_threads=settings.ort_intra_op_threads)
