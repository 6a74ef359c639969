"""The embedded default editor: a tiny InstructPix2Pix pipeline (diffusers' own classes:
UNet2DConditionModel with 8 input channels, AutoencoderKL, CLIPTextModel, CLIPTokenizer) with
random weights and a CLIP-style BPE tokenizer trained here on edit instructions.

No model hub is reachable where this project is built, so the default stack builds it locally
and deterministically, saves it with `save_pretrained` and loads it back through the same
`from_pretrained` path as a real checkpoint. Its card carries the untrained mark: every edit it
makes says so, and its pixels are noise, no edit of anything.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from safetypairs.edit.engine import CARD_FILE
from safetypairs.serving.builds import build_atomically
from safetypairs.serving.default_models import DefaultModel

log = logging.getLogger(__name__)

NAME = "default-editor"
BUILD_VERSION = "2"
NOTICE = (
    "UNTRAINED: the embedded default editor is a tiny InstructPix2Pix pipeline with random "
    "weights; it exercises the whole stack (scheduler, guidance, seeds, progress, change map) "
    "and its output is no edit of anything. Set SAFETYPAIRS_EDIT_MODEL to a real checkpoint "
    "(e.g. FLUX.1 Kontext, Qwen-Image-Edit, InstructPix2Pix)."
)


def default_editor_dir(home: str) -> Path:
    return DEFAULT.directory(home)


def ensure_default_editor(home: str) -> Path:
    """The default editor's directory, building it first if it is not in `home` yet."""
    return DEFAULT.ensure(home)


def build_default_editor(out_dir: Path) -> Path:
    """Build the tiny pipeline into `out_dir` (atomically); return the directory."""
    from safetypairs.edit.random_pipelines import random_pipeline
    from safetypairs.serving.model_refs import UNTRAINED_MARK

    def build(work: Path) -> None:
        pipe, _ = random_pipeline("StableDiffusionInstructPix2PixPipeline", "tiny")
        pipe.save_pretrained(work)
        card = {
            "name": NAME,
            "version": BUILD_VERSION,
            "description": "tiny InstructPix2Pix (UNet 32/64 channels, 8x VAE, 2-layer CLIP "
            "text encoder, BPE tokenizer trained on edit instructions)",
            UNTRAINED_MARK: True,
            "notice": NOTICE,
        }
        (work / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")

    out = build_atomically(Path(out_dir), build, "model_index.json")
    log.info("built the embedded default editor in %s", out)
    return out


DEFAULT = DefaultModel(
    "edit",
    NAME,
    BUILD_VERSION,
    "model_index.json",
    build_default_editor,
    requires=("torch", "diffusers", "transformers"),
)
