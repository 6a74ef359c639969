"""Frozen image encoders for guards: pixels -> pooled features.

A reference is `efficientnet-lite0` (the packaged ImageNet weights) or any transformers vision
model with a pooled output given as a Hugging Face id, a local directory or a BentoML model tag:
the vision towers of CLIP and SigLIP, or any model whose output has `pooler_output`. Loading
goes through `from_pretrained`; remote code is never run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from safetypairs.contract.errors import ModelError
from safetypairs.guard.sidecar import GuardInput
from safetypairs.serving.model_refs import UNTRAINED_MARK, resolve_model_ref
from safetypairs.vision import efficientnet

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Encoder:
    ref: str
    key: str  # identity for the embedding cache: family + digest of the weights
    module: torch.nn.Module  # (N, 3, S, S) -> (N, dim), eval mode
    input: GuardInput
    dim: int
    weights: str
    untrained: bool


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


class _Pooled(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).pooler_output


def _hf_encoder(ref: str) -> Encoder:
    import transformers
    from transformers import AutoConfig, AutoModel

    transformers.utils.logging.disable_progress_bar()
    path = resolve_model_ref(ref)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"encoder {ref!r}: no usable transformers config at {path}: {exc}"
        ) from None
    kind = config.model_type
    if kind in ("clip", "clip_vision_model"):
        model = transformers.CLIPVisionModel.from_pretrained(path)
        mean, std = CLIP_MEAN, CLIP_STD
    elif kind in ("siglip", "siglip_vision_model"):
        model = transformers.SiglipVisionModel.from_pretrained(path)
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    else:
        model = AutoModel.from_pretrained(path, trust_remote_code=False)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    vision = getattr(model.config, "vision_config", model.config)
    size = int(getattr(vision, "image_size", 224))
    try:  # a saved image processor, when there is one, knows the model's own normalisation
        processor = transformers.AutoImageProcessor.from_pretrained(path)
        mean, std = tuple(processor.image_mean), tuple(processor.image_std)
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    module = _Pooled(model.eval()).eval()
    with torch.no_grad():
        probe = module(torch.zeros(1, 3, size, size))
    if probe.ndim != 2:
        raise ModelError(f"encoder {ref!r} ({kind}) has no pooled output of shape (N, dim)")
    weights = list(Path(path).glob("*.safetensors")) + list(Path(path).glob("*.bin"))
    return Encoder(
        ref=ref,
        key=f"hf-{kind}-{_digest(weights) if weights else 'unknown'}",
        module=module,
        input=GuardInput("pixel_values", size, mean, std),  # type: ignore[arg-type]
        dim=int(probe.shape[1]),
        weights=f"{kind} vision tower from {ref}",
        untrained=bool(
            getattr(vision, UNTRAINED_MARK, False) or getattr(model.config, UNTRAINED_MARK, False)
        ),
    )


def load_encoder(ref: str) -> Encoder:
    if ref == efficientnet.NAME:
        module = efficientnet.PooledFeatures(efficientnet.load_efficientnet_lite0()).eval()
        return Encoder(
            ref=ref,
            key=f"{efficientnet.NAME}-{_digest([efficientnet.weights_path()])}",
            module=module,
            input=GuardInput(
                "pixel_values", efficientnet.INPUT_SIZE, efficientnet.MEAN, efficientnet.STD
            ),
            dim=efficientnet.FEATURE_DIM,
            weights=efficientnet.WEIGHTS_DESCRIPTION,
            untrained=False,
        )
    return _hf_encoder(ref)
