"""Small guards with real architectures and random weights, built locally for tests: they
cover every category (the embedded default covers only O6) and exercise the untrained path."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from transformers import CLIPVisionConfig, CLIPVisionModel

from safetypairs.guard.export import export_guard
from safetypairs.guard.sidecar import GuardInput, GuardOutput, GuardSidecar
from safetypairs.policy import default_policy

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SEED = 20251128
INPUT_SIZE = 64


class _Guard(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, head: torch.nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.encoder(pixel_values=pixel_values).pooler_output))


def build_tiny_clip_guard(out_dir: Path) -> Path:
    """A 2-layer CLIP vision tower (saved with save_pretrained, loaded back with
    from_pretrained, as a real checkpoint would be) + a linear head over O1..O9."""
    transformers.utils.logging.disable_progress_bar()
    codes = default_policy().codes
    torch.manual_seed(SEED)
    config = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=INPUT_SIZE,
        patch_size=8,
        projection_dim=64,
    )
    # Marked so that anything trained on this encoder says its weights are random.
    config.safetypairs_untrained = True
    CLIPVisionModel(config).save_pretrained(out_dir / "encoder")
    encoder = CLIPVisionModel.from_pretrained(out_dir / "encoder")
    head = torch.nn.Linear(config.hidden_size, len(codes))
    sidecar = GuardSidecar(
        name="tiny-clip-guard",
        version="1",
        description="2-layer CLIP vision tower + linear head, random weights (tests)",
        untrained=True,
        input=GuardInput("pixel_values", INPUT_SIZE, CLIP_MEAN, CLIP_STD),
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
    export_guard(_Guard(encoder, head), sidecar, out_dir / "guard.onnx", example=example)
    return out_dir / "guard.onnx"


def save_tiny_siglip(out_dir: Path) -> Path:
    """A 2-layer SigLIP vision tower with random weights, saved with save_pretrained."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(SEED)
    config = SiglipVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=INPUT_SIZE,
        patch_size=8,
    )
    config.safetypairs_untrained = True
    SiglipVisionModel(config).save_pretrained(out_dir)
    return out_dir
