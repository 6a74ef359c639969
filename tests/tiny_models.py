"""Small guards with real architectures and random weights, built locally for tests: they
cover every category (the embedded default covers only O6) and exercise the untrained path."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from transformers import CLIPVisionConfig, CLIPVisionModel

from safetypairs.contract.policy import default_policy
from safetypairs.guard.export import export_guard
from safetypairs.guard.sidecar import GuardOutput, GuardSidecar
from safetypairs.training.encoders import load_encoder
from safetypairs.training.train import EncoderHeadGuard

SEED = 20251128
INPUT_SIZE = 64


# The two tiny towers share their shape: 2 layers, hidden 64, 64 px input, patch 8.
TINY_TOWER = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": INPUT_SIZE,
    "patch_size": 8,
}


def build_tiny_clip_guard(out_dir: Path) -> Path:
    """A 2-layer CLIP vision tower (saved with save_pretrained, loaded back with
    from_pretrained, as a real checkpoint would be) + a linear head over O1..O9."""
    transformers.utils.logging.disable_progress_bar()
    codes = default_policy().codes
    torch.manual_seed(SEED)
    config = CLIPVisionConfig(**TINY_TOWER, projection_dim=64)
    # Marked so that anything trained on this encoder says its weights are random.
    config.safetypairs_untrained = True
    CLIPVisionModel(config).save_pretrained(out_dir / "encoder")
    encoder = load_encoder(str(out_dir / "encoder"))  # from_pretrained, as a real checkpoint
    head = torch.nn.Linear(encoder.dim, len(codes))
    sidecar = GuardSidecar(
        name="tiny-clip-guard",
        version="1",
        description="2-layer CLIP vision tower + linear head, random weights (tests)",
        untrained=True,
        input=encoder.input,  # CLIP's normalisation at 64 px, as the encoder loader derives
        output=GuardOutput("probabilities", "probabilities"),
        categories=codes,
        thresholds=dict.fromkeys(codes, 0.5),
        opset=0,
        weights=f"random initialisation, seed {SEED}",
        training="none",
        notice="UNTRAINED: random weights; the scores mean nothing.",
    )
    example = torch.randn(
        2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(SEED)
    )
    export_guard(
        EncoderHeadGuard(encoder.module, head), sidecar, out_dir / "guard.onnx", example=example
    )
    return out_dir / "guard.onnx"


def save_tiny_siglip(out_dir: Path) -> Path:
    """A 2-layer SigLIP vision tower with random weights, saved with save_pretrained."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(SEED)
    config = SiglipVisionConfig(**TINY_TOWER)
    config.safetypairs_untrained = True
    SiglipVisionModel(config).save_pretrained(out_dir)
    return out_dir
