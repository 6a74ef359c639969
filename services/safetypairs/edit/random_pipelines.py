"""Every supported pipeline class built from architecture configs with random weights, at the
real architecture size (for the device check: seconds per edit on a GPU without downloading
tens of GB) or tiny (so CPU tests drive each family through the same engine).

The configs (safetypairs.edit.architectures) are those the published checkpoints ship.
Tokenizers are trained locally on a few instructions: real vocabularies are not needed to time a
forward pass, only valid token ids. Everything built here is untrained and marked so.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from safetypairs.edit.architectures import (
    FLUX_KONTEXT,
    INSTRUCT_PIX2PIX,
    QWEN_IMAGE_EDIT,
    QWEN_SPECIAL,
)
from safetypairs.edit.engine import EditCard
from safetypairs.edit.local_tokenizers import byte_level_bpe, clip_tokenizer


def _flow_match_scheduler() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256,
        base_shift=0.5,
        max_image_seq_len=4096,
        max_shift=1.15,
        shift=3.0,
        use_dynamic_shifting=True,
    )


def _clip_text(cfg: dict[str, Any], tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,  # where the pooled output is read
            pad_token_id=tokenizer.pad_token_id,
            **cfg,
        )
    )


def _instruct_pix2pix(cfg: dict[str, dict[str, Any]]) -> Any:
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )

    tokenizer = clip_tokenizer()
    return StableDiffusionInstructPix2PixPipeline(
        vae=AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            **cfg["vae"],
        ),
        text_encoder=_clip_text(cfg["clip"], tokenizer),
        tokenizer=tokenizer,
        # 8 input channels: the noisy latents and the source image's latents.
        unet=UNet2DConditionModel(in_channels=8, out_channels=4, **cfg["unet"]),
        scheduler=EulerAncestralDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _flux_kontext(cfg: dict[str, dict[str, Any]]) -> Any:
    from diffusers import AutoencoderKL, FluxKontextPipeline, FluxTransformer2DModel
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    tokenizer = clip_tokenizer()
    tokenizer_2 = PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(["<pad>", "</s>", "<unk>"], 512),
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    return FluxKontextPipeline(
        scheduler=_flow_match_scheduler(),
        vae=AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            **cfg["vae"],
        ),
        text_encoder=_clip_text(cfg["clip"], tokenizer),
        tokenizer=tokenizer,
        text_encoder_2=T5EncoderModel(T5Config(**cfg["t5"])),
        tokenizer_2=tokenizer_2,
        transformer=FluxTransformer2DModel(**cfg["transformer"]),
    )


def _qwen_image_edit(cfg: dict[str, dict[str, Any]]) -> Any:
    from diffusers import (
        AutoencoderKLQwenImage,
        QwenImageEditPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2Tokenizer,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )

    model = json.loads(byte_level_bpe(QWEN_SPECIAL, 768).to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=[tuple(m) for m in model["merges"]],
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL[1:]})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}

    class ImageOnlyProcessor(Qwen2VLProcessor):
        """Qwen2VLProcessor without its video processor, which needs torchvision (not in this
        environment); an edit never sends video."""

        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    processor = ImageOnlyProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer)
    config = Qwen2_5_VLConfig(
        text_config=cfg["text"],
        vision_config=cfg["vision"],
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return QwenImageEditPipeline(
        scheduler=_flow_match_scheduler(),
        vae=AutoencoderKLQwenImage(**cfg["vae"]),
        text_encoder=Qwen2_5_VLForConditionalGeneration(config),
        tokenizer=tokenizer,
        processor=processor,
        transformer=QwenImageTransformer2DModel(**cfg["transformer"]),
    )


BUILDERS = {
    "StableDiffusionInstructPix2PixPipeline": (_instruct_pix2pix, INSTRUCT_PIX2PIX),
    "FluxKontextPipeline": (_flux_kontext, FLUX_KONTEXT),
    "QwenImageEditPipeline": (_qwen_image_edit, QWEN_IMAGE_EDIT),
}


def random_pipeline(
    pipeline: str, size: str, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[Any, EditCard]:
    """A supported `pipeline` class at `size` ("real" or "tiny") with random weights,
    built straight on `device` in `dtype` (a 12B model never passes through CPU memory in
    float32), and its card."""
    build, configs = BUILDERS[pipeline]
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            pipe = build(configs[size])
    finally:
        torch.set_default_dtype(previous)
    pipe.to(device=device, dtype=dtype)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()  # as from_pretrained leaves them: no dropout, deterministic
    card = EditCard(
        name=f"random-{pipeline}-{size}",
        version="0",
        description=f"{pipeline} at its {size} architecture size with random weights",
        untrained=True,
        notice="untrained: random weights, for timing and interface checks only",
    )
    return pipe, card
