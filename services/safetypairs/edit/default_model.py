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

from safetypairs.errors import ModelError
from safetypairs.serving.builds import build_atomically

log = logging.getLogger(__name__)

NAME = "default-editor"
BUILD_VERSION = "1"
NOTICE = (
    "UNTRAINED: the embedded default editor is a tiny InstructPix2Pix pipeline with random "
    "weights; it exercises the whole stack (scheduler, guidance, seeds, progress, change map) "
    "and its output is no edit of anything. Set SAFETYPAIRS_EDIT_MODEL to a real checkpoint "
    "(e.g. FLUX.1 Kontext, Qwen-Image-Edit, InstructPix2Pix)."
)
_CORPUS = [
    "remove the gun from the table",
    "replace the knife with a banana",
    "make the sky red",
    "add a hat to the cat",
    "turn the beer bottle into a water bottle",
    "remove the blood from the floor",
    "put a flower in her hand instead of the cigarette",
    "change the syringe into a pen",
    "add smoke coming out of the window",
    "make the photo black and white",
    "cover the person with a blanket",
    "replace the text on the sign with hello",
]


def default_editor_dir(home: str) -> Path:
    return Path(home) / "models" / f"{NAME}-v{BUILD_VERSION}"


def ensure_default_editor(home: str) -> Path:
    """The default editor's directory, building it first if it is not in `home` yet."""
    out = default_editor_dir(home)
    if (out / "model_index.json").is_file():
        return out
    return build_default_editor(out)


def train_clip_tokenizer(work: Path):  # -> CLIPTokenizer
    """A CLIP tokenizer (byte-level BPE, `</w>` word ends) whose merges are trained here."""
    from tokenizers import pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    backend = CLIPTokenizer().backend_tokenizer  # CLIP's normaliser and pre-tokeniser
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS, trainer)
    model = json.loads(backend.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    for char in sorted(alphabet):  # CLIP's vocabulary holds every byte as a word end too
        vocab.setdefault(char + "</w>", len(vocab))
    files = work / "tokenizer-source"
    files.mkdir()
    (files / "vocab.json").write_text(json.dumps(vocab))
    merges = "".join(f"{a} {b}\n" for a, b in model["merges"])
    (files / "merges.txt").write_text("#version: 0.2\n" + merges)
    tokenizer = CLIPTokenizer.from_pretrained(files, model_max_length=77)
    return tokenizer


def build_default_editor(out_dir: Path) -> Path:
    """Build the tiny pipeline into `out_dir` (atomically); return the directory."""
    try:
        import torch
        from diffusers import (
            AutoencoderKL,
            EulerAncestralDiscreteScheduler,
            StableDiffusionInstructPix2PixPipeline,
            UNet2DConditionModel,
        )
        from transformers import CLIPTextConfig, CLIPTextModel
    except ImportError as exc:
        raise ModelError(
            f"building the default editor needs the `models` extra (torch, diffusers, "
            f"transformers): {exc}"
        ) from None

    from safetypairs.serving.model_refs import UNTRAINED_MARK

    def build(work: Path) -> None:
        import shutil

        tokenizer = train_clip_tokenizer(work)
        torch.manual_seed(0)  # deterministic weights: every build is the same model
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                projection_dim=32,
            )
        )
        # Four VAE levels give the real 8x downscale; two UNet levels keep it cheap.
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(16, 32, 32, 32),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=64,
        )
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=8,  # noisy latents + the source image's latents (InstructPix2Pix)
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        )
        scheduler = EulerAncestralDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
        )
        pipe = StableDiffusionInstructPix2PixPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(work)
        shutil.rmtree(work / "tokenizer-source")
        card = {
            "name": NAME,
            "version": BUILD_VERSION,
            "description": "tiny InstructPix2Pix (UNet 32/64 channels, 8x VAE, 2-layer CLIP "
            "text encoder, BPE tokenizer trained on edit instructions)",
            UNTRAINED_MARK: True,
            "notice": NOTICE,
        }
        (work / "safetypairs_card.json").write_text(json.dumps(card, indent=2) + "\n")

    out = build_atomically(Path(out_dir), build, "model_index.json")
    log.info("built the embedded default editor in %s", out)
    return out
