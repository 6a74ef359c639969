"""The guard engine: an ONNX graph (image -> per-category probabilities) on onnxruntime.

No torch: this module imports onnxruntime, numpy and Pillow only, so the guard's container
stays small. It knows nothing of BentoML or gRPC; tests and benchmarks drive it directly.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from safetypairs.errors import InvalidInput, ModelError
from safetypairs.guard.sidecar import GuardSidecar, sidecar_path
from safetypairs.policy import Policy, default_policy, policy_from_dict

log = logging.getLogger(__name__)

# Best first; whichever of these the installed onnxruntime offers is used, CPU always last.
PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)


def choose_providers(requested: Sequence[str] = ()) -> list[str]:
    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelError(
                f"onnxruntime execution provider(s) {', '.join(missing)} not available; "
                f"this onnxruntime offers: {', '.join(available)}"
            )
        chosen = list(requested)
    else:
        chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")  # fallback for ops a GPU provider lacks
    return chosen


def _check_single_onnxruntime() -> None:
    installed = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            installed.append(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(installed) > 1:
        log.error(
            "both onnxruntime and onnxruntime-gpu are installed; they ship the same module and "
            "the GPU providers may silently be missing. Uninstall both and install one."
        )


@dataclass(frozen=True)
class GuardEngine:
    onnx_path: Path
    sidecar: GuardSidecar
    policy: Policy
    session: ort.InferenceSession

    @classmethod
    def load(
        cls,
        onnx_path: Path,
        *,
        providers: Sequence[str] = (),
        intra_op_threads: int = 0,
    ) -> GuardEngine:
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ModelError(f"guard model file {onnx_path} does not exist")
        sidecar = GuardSidecar.read(sidecar_path(onnx_path))
        try:
            policy = (
                default_policy()
                if sidecar.policy is None
                else policy_from_dict(sidecar.policy, f"{onnx_path} sidecar policy")
            )
            policy.check_codes(sidecar.categories)
        except InvalidInput as exc:
            raise ModelError(f"guard {onnx_path}: {exc.message}") from None
        _check_single_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        chosen = choose_providers(providers)
        try:
            session = ort.InferenceSession(str(onnx_path), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"onnxruntime cannot load {onnx_path}: {exc}") from None
        engine = cls(onnx_path, sidecar, policy, session)
        engine._check_signature()
        really = session.get_providers()
        log.info("guard %s %s runs on %s", sidecar.name, sidecar.version, ", ".join(really))
        if really[0] != chosen[0]:
            log.warning("asked for %s but onnxruntime runs %s", chosen[0], really[0])
        return engine

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        name, out = self.sidecar.input.name, self.sidecar.output.name
        if name not in inputs:
            raise ModelError(f"guard graph has no input {name!r} (has {sorted(inputs)})")
        if out not in outputs:
            raise ModelError(f"guard graph has no output {out!r} (has {sorted(outputs)})")
        width = outputs[out].shape[-1]
        if isinstance(width, int) and width != len(self.sidecar.categories):
            raise ModelError(
                f"guard output {out!r} has {width} columns but the sidecar names "
                f"{len(self.sidecar.categories)} categories"
            )

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def categories(self) -> tuple[str, ...]:
        return self.sidecar.categories

    @property
    def input_size(self) -> int:
        return self.sidecar.input.size

    def preprocess(self, img: Image.Image) -> np.ndarray:
        """RGB image -> float32 CHW array, as the sidecar describes."""
        spec = self.sidecar.input
        size = spec.size
        if spec.resize == "squash":
            img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
        else:
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
            left, top = (nw - size) // 2, (nh - size) // 2
            img = img.crop((left, top, left + size, top + size))
        arr = np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
        arr = (arr - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def infer(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocessed CHW arrays -> (N, categories) probabilities."""
        x = np.stack(batch) if len(batch) > 1 else batch[0][None]
        (out,) = self.session.run([self.sidecar.output.name], {self.sidecar.input.name: x})
        out = np.asarray(out, dtype=np.float32)
        if self.sidecar.output.kind == "logits":
            out = 1.0 / (1.0 + np.exp(-out))
        return out

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        size = self.input_size
        for n in batch_sizes:
            self.infer([np.zeros((3, size, size), np.float32)] * n)
