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
from pathlib import Path

from safetypairs.edit.engine import CARD_FILE
from safetypairs.serving.default_models import DefaultModel

NAME = "default-editor"
BUILD_VERSION = "2"
NOTICE = (
    "UNTRAINED: the embedded default editor is a tiny InstructPix2Pix pipeline with random "
    "weights; it exercises the whole stack (scheduler, guidance, seeds, progress, change map) "
    "and its output is no edit of anything. Set SAFETYPAIRS_EDIT_MODEL to a real checkpoint "
    "(e.g. FLUX.1 Kontext, Qwen-Image-Edit, InstructPix2Pix)."
)


def _write(work: Path) -> None:
    """The tiny pipeline, saved with its card."""
    from safetypairs.edit.random_pipelines import random_pipeline
    from safetypairs.serving.model_refs import UNTRAINED_MARK

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


DEFAULT = DefaultModel(
    "edit",
    NAME,
    BUILD_VERSION,
    "model_index.json",
    _write,
    requires=("torch", "diffusers", "transformers"),
)
# The editor's default by the names the service, tests and benchmarks use.
default_editor_dir = DEFAULT.directory
ensure_default_editor = DEFAULT.ensure
build_default_editor = DEFAULT.build
