"""The embedded default guard: a tiny CLIP vision tower + linear head with random weights.

No model hub is reachable on the machines this project is built on, so the default is built
locally and deterministically from real transformers architecture code, saved with
`save_pretrained`, loaded back with `from_pretrained` (the path a real checkpoint takes),
exported to ONNX and served like any other guard. Its scores mean nothing: every answer from
it is marked untrained.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from safetypairs.errors import ModelError
from safetypairs.guard.sidecar import GuardInput, GuardOutput, GuardSidecar, sidecar_path
from safetypairs.policy import default_policy

log = logging.getLogger(__name__)

# Bump when the recipe changes so cached builds are rebuilt.
BUILD_VERSION = "1"
NAME = "embedded-default-guard"
SEED = 20251128
INPUT_SIZE = 64
# CLIP's own normalisation constants.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NOTICE = (
    "UNTRAINED: the embedded default guard has random weights; its scores exercise the "
    "serving stack and say nothing about the image."
)


def default_guard_dir(home: str) -> Path:
    return Path(home) / "models" / f"{NAME}-v{BUILD_VERSION}"


def ensure_default_guard(home: str) -> Path:
    """The default guard's .onnx path, building it first if it is not in `home` yet."""
    onnx_path = default_guard_dir(home) / "guard.onnx"
    if onnx_path.is_file() and sidecar_path(onnx_path).is_file():
        return onnx_path
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise ModelError(
            f"no guard model configured and the embedded default is not built in {home}; "
            "install the `models` extra and run `safetypairs build-default-guard`, or set "
            "SAFETYPAIRS_GUARD_MODEL"
        ) from None
    return build_default_guard(onnx_path.parent)


def build_default_guard(out_dir: Path) -> Path:
    """Build, save, reload, export and parity-check the default guard into `out_dir`."""
    import torch
    import transformers
    from transformers import CLIPVisionConfig, CLIPVisionModel

    transformers.utils.logging.disable_progress_bar()

    from safetypairs.guard.export import export_guard

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
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build in a temporary sibling and rename: a crash never leaves half a model behind,
    # and concurrent builders (several workers) do not see each other's partial files.
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        CLIPVisionModel(config).save_pretrained(work / "encoder")
        encoder = CLIPVisionModel.from_pretrained(work / "encoder")
        head = torch.nn.Linear(config.hidden_size, len(codes))

        class Guard(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder, self.head = encoder, head

            def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
                pooled = self.encoder(pixel_values=pixel_values).pooler_output
                return torch.sigmoid(self.head(pooled))

        sidecar = GuardSidecar(
            name=NAME,
            version=BUILD_VERSION,
            description=(
                "Tiny CLIP vision tower (2 layers, hidden 64, 64 px input, patch 8) with a "
                "linear head over the nine LlavaGuard-style categories; random weights "
                f"(seed {SEED}), built locally."
            ),
            untrained=True,
            input=GuardInput("pixel_values", INPUT_SIZE, CLIP_MEAN, CLIP_STD),
            output=GuardOutput("probabilities", "probabilities"),
            categories=codes,
            thresholds=dict.fromkeys(codes, 0.5),
            opset=0,
            training="none: random initialisation",
            notice=NOTICE,
        )
        generator = torch.Generator().manual_seed(SEED)
        example = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE, generator=generator)
        export_guard(Guard(), sidecar, work / "guard.onnx", example=example)
        try:
            work.chmod(0o755)
            os.rename(work, out_dir)
        except OSError:
            if not (out_dir / "guard.onnx").is_file():  # lost a race to a finished build: fine
                raise
        # TemporaryDirectory's cleanup tolerates the directory having been renamed away.
    log.info("built the embedded default guard in %s", out_dir)
    return out_dir / "guard.onnx"
