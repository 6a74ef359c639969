"""Every supported pipeline class built from architecture configs with random weights, at the
real architecture size (for the device check: seconds per edit on a GPU without downloading
tens of GB) or tiny (so CPU tests drive each family through the same engine).

The configs are those the published checkpoints ship (FLUX.1 Kontext [dev], Qwen-Image-Edit),
written out here because no model hub is reachable. Tokenizers are trained locally on a few
instructions: real vocabularies are not needed to time a forward pass, only valid token ids.
Everything built here is untrained and marked so.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from safetypairs.edit.engine import EditCard
from safetypairs.edit.local_tokenizers import byte_level_bpe, clip_tokenizer

SIZES = ("real", "tiny")

# CLIP ViT-L/14's text tower, the text encoder of InstructPix2Pix and FLUX.1.
CLIP_L = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    projection_dim=768,
    hidden_act="quick_gelu",
)
TINY_CLIP = dict(
    vocab_size=1024,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    projection_dim=32,
)

# name -> per size, the config dicts of each component
INSTRUCT_PIX2PIX: dict[str, dict[str, dict[str, Any]]] = {
    "real": {  # timbrooks/instruct-pix2pix (Stable Diffusion 1.5 with an 8-channel UNet input)
        "unet": dict(
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
        ),
        "vae": dict(
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            norm_num_groups=32,
            sample_size=512,
            scaling_factor=0.18215,
        ),
        "clip": CLIP_L,
    },
    "tiny": {  # the embedded default: two UNet levels keep it cheap, four VAE levels give 8x
        "unet": dict(
            sample_size=8,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        ),
        "vae": dict(
            block_out_channels=(16, 32, 32, 32),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=64,
        ),
        "clip": TINY_CLIP,
    },
}

FLUX_KONTEXT: dict[str, dict[str, dict[str, Any]]] = {
    "real": {  # black-forest-labs/FLUX.1-Kontext-dev
        "transformer": dict(
            patch_size=1,
            in_channels=64,
            num_layers=19,
            num_single_layers=38,
            attention_head_dim=128,
            num_attention_heads=24,
            joint_attention_dim=4096,
            pooled_projection_dim=768,
            guidance_embeds=True,
            axes_dims_rope=(16, 56, 56),
        ),
        "vae": dict(
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=16,
            norm_num_groups=32,
            scaling_factor=0.3611,
            shift_factor=0.1159,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
        "clip": CLIP_L,
        "t5": dict(  # T5 v1.1 XXL encoder
            vocab_size=32128,
            d_model=4096,
            d_kv=64,
            d_ff=10240,
            num_layers=24,
            num_heads=64,
            feed_forward_proj="gated-gelu",
        ),
    },
    "tiny": {
        "transformer": dict(
            patch_size=1,
            in_channels=16,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            guidance_embeds=True,
            axes_dims_rope=(4, 6, 6),
        ),
        "vae": dict(
            block_out_channels=(8, 8, 8, 8),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=4,
            scaling_factor=0.3611,
            shift_factor=0.1159,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
        "clip": TINY_CLIP,
        "t5": dict(
            vocab_size=1024,
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=1,
            num_heads=2,
            feed_forward_proj="gated-gelu",
        ),
    },
}

QWEN_IMAGE_EDIT: dict[str, dict[str, dict[str, Any]]] = {
    "real": {  # Qwen/Qwen-Image-Edit
        "transformer": dict(
            patch_size=2,
            in_channels=64,
            out_channels=16,
            num_layers=60,
            attention_head_dim=128,
            num_attention_heads=24,
            joint_attention_dim=3584,
            guidance_embeds=False,
            axes_dims_rope=(16, 56, 56),
        ),
        "vae": {},  # AutoencoderKLQwenImage's defaults are the released VAE's
        "text": dict(  # Qwen2.5-VL-7B-Instruct
            vocab_size=152064,
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            max_position_embeddings=128000,
            rope_theta=1_000_000.0,
            rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
        ),
        "vision": dict(
            depth=32,
            hidden_size=1280,
            intermediate_size=3420,
            num_heads=16,
            out_hidden_size=3584,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            fullatt_block_indexes=[7, 15, 23, 31],
        ),
    },
    "tiny": {
        "transformer": dict(
            patch_size=2,
            in_channels=16,
            out_channels=4,
            num_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            guidance_embeds=False,
            axes_dims_rope=(4, 6, 6),
        ),
        "vae": dict(
            base_dim=8,
            z_dim=4,
            dim_mult=[1, 2, 2, 2],
            num_res_blocks=1,
            latents_mean=[0.0] * 4,
            latents_std=[1.0] * 4,
        ),
        "text": dict(
            vocab_size=1024,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=4096,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        ),
        "vision": dict(
            depth=1,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=32,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            fullatt_block_indexes=[0],
        ),
    },
}

QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


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
