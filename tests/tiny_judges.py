"""Tiny judge checkpoints of every model family a user is likely to load, built on the spot:
each family's real model class, processor class and image processor, a tokenizer of the
family's type (byte-level BPE for Qwen2 / SmolLM / Llama 3, SentencePiece-style BPE with byte
fallback for Llama 2 and Gemma) trained here on the judge's own prompts with the family's
special tokens, random weights. Saved with save_pretrained, so the engine loads them through
the same from_pretrained path as a published checkpoint.

A video processor needs torchvision, which the CPU install lacks; the Qwen2-VL, OneVision and
SmolVLM processors are therefore saved with an images-only stand-in for it, and their
processor_config.json says which video processor class the family has (as published ones do).

Over 400 lines on purpose: one short builder per family, kept in one file so that what differs
between the families (tokenizer type, special tokens, chat format, processor) reads side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from safetypairs.judge.default_model import _corpus
from safetypairs.judge.families import ImagesOnlyVideoProcessor, images_only
from safetypairs.serving.model_refs import UNTRAINED_MARK

SEED = 20261202
LAYERS = {"num_hidden_layers": 1, "num_attention_heads": 2}
TEXT = {**LAYERS, "hidden_size": 32, "intermediate_size": 64, "num_key_value_heads": 1}
TEXT_DIMS = {"head_dim": 16, "max_position_embeddings": 4096}
SIGLIP = {**LAYERS, "hidden_size": 32, "intermediate_size": 64, "image_size": 32, "patch_size": 8}
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]

# -- tokenizers -------------------------------------------------------------------------------


def _train(
    pre_tokenizer: Any, specials: list[str], vocab_size: int, byte_level: bool
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A BPE vocabulary and merges learnt from the judge's prompts and answers."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if byte_level else [],
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer)
    data = json.loads(bpe.to_str())["model"]
    vocab, merges = data["vocab"], [tuple(m) for m in data["merges"]]
    if not byte_level:  # SentencePiece models fall back to byte tokens for unseen characters
        for token in BYTE_TOKENS:
            vocab.setdefault(token, len(vocab))
    return vocab, merges


def byte_level_bpe(specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    return _train(pre_tokenizers.ByteLevel(add_prefix_space=False), specials, 1200, True)


def sentencepiece_bpe(
    specials: list[str], prepend: bool, split: bool = True
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Llama 2 / Mistral (a "▁" before the text) and Gemma (none) style vocabularies. Learnt,
    like SentencePiece's, within words and within runs of punctuation, never across both;
    `split=False` learns merges across them (a vocabulary the judge must refuse)."""
    scheme = "first" if prepend else "never"
    if not split:
        return _train(pre_tokenizers.Metaspace("▁", scheme, split=False), specials, 1200, False)
    metaspace = pre_tokenizers.Metaspace("▁", prepend_scheme=scheme)
    pre = pre_tokenizers.Sequence([metaspace, pre_tokenizers.Punctuation("contiguous")])
    return _train(pre, specials, 1200, False)


# -- chat templates ---------------------------------------------------------------------------


def _template(turn: str, image: str, end: str, assistant: str) -> str:
    """A chat template: each message as `turn` (with {role}) + content + `end`."""
    return (
        "{% for message in messages %}"
        + turn
        + "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
        + image
        + "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
        + end
        + "{% endfor %}{% if add_generation_prompt %}"
        + assistant
        + "{% endif %}"
    )


CHATML = _template(
    "<|im_start|>{{ message['role'] }}\n", "<image>\n", "<|im_end|>\n", "<|im_start|>assistant\n"
)
QWEN_VL = _template(
    "<|im_start|>{{ message['role'] }}\n",
    "<|vision_start|><|image_pad|><|vision_end|>",
    "<|im_end|>\n",
    "<|im_start|>assistant\n",
)
GEMMA = "{{ bos_token }}" + _template(
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n",
    "<start_of_image>",
    "<end_of_turn>\n",
    "<start_of_turn>model\n",
)
IDEFICS = "<|begin_of_text|>" + _template(
    "{{ message['role'] | capitalize }}:", "<image>", "<end_of_utterance>\n", "Assistant:"
)
SMOLVLM = "<|im_start|>" + _template(
    "{{ message['role'] | capitalize }}:", "<image>", "<end_of_utterance>\n", "Assistant:"
)
MISTRAL = "{{ bos_token }}" + _template("[INST] ", "<image>\n", " [/INST]", "")


# -- families ---------------------------------------------------------------------------------


def _finish(model: Any, processor: Any, out: Path, video_processor: str = "") -> Path:
    config = model.config
    setattr(config, UNTRAINED_MARK, True)
    tok = processor.tokenizer
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if video_processor:  # as published: the config names the family's video processor
        cfg = out / "processor_config.json"
        data = json.loads(cfg.read_text())
        data["video_processor"] = {"video_processor_type": video_processor}
        cfg.write_text(json.dumps(data, indent=2))
    return out


def _ids(tok: Any) -> dict[str, Any]:
    """The language model's vocabulary size and special ids, from the tokenizer."""
    return {
        "vocab_size": len(tok),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


def _qwen_tokenizer(extra: list[str]) -> Any:
    from transformers import Qwen2Tokenizer

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *extra]
    vocab, merges = byte_level_bpe(specials)
    tok = Qwen2Tokenizer(
        vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tok.add_special_tokens({"additional_special_tokens": specials})
    return tok


def build_llava_onevision(out: Path) -> Path:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )

    tok = _qwen_tokenizer(["<image>", "<video>"])
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    processor = images_only(LlavaOnevisionProcessor)(
        image_processor=LlavaOnevisionImageProcessorPil(
            size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints
        ),
        tokenizer=tok,
        video_processor=ImagesOnlyVideoProcessor(),
        num_image_tokens=16,
        vision_feature_select_strategy="full",
        chat_template=CHATML,
    )
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(**SIGLIP),
        text_config=Qwen2Config(**_ids(tok), **TEXT, **TEXT_DIMS),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        video_token_id=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
    )
    return _finish(
        LlavaOnevisionForConditionalGeneration(config),
        processor,
        out,
        "LlavaOnevisionVideoProcessor",
    )


def _build_qwen_vl(out: Path, version: str) -> Path:
    import transformers as tf

    prefix = "Qwen2VL" if version == "2" else "Qwen2_5_VL"
    tok = _qwen_tokenizer(["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"])
    processor = images_only(getattr(tf, f"{prefix}Processor"))(
        image_processor=tf.Qwen2VLImageProcessorPil(
            min_pixels=28 * 28 * 4, max_pixels=56 * 56 * 4, patch_size=14, merge_size=2
        ),
        tokenizer=tok,
        video_processor=ImagesOnlyVideoProcessor(),
        chat_template=QWEN_VL,
    )
    vision = {"depth": 1, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2}
    if version == "2":
        vision |= {"embed_dim": 32, "hidden_size": 32, "mlp_ratio": 2}
    else:
        vision |= {"hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 32}
        vision |= {"fullatt_block_indexes": [0], "window_size": 56}
    text = {**TEXT, **_ids(tok), "max_position_embeddings": 4096}
    text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3]}
    config = getattr(tf, f"{prefix}Config")(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
    )
    model = getattr(tf, f"{prefix}ForConditionalGeneration")(config)
    return _finish(model, processor, out, "Qwen2VLVideoProcessor")


def build_qwen2_vl(out: Path) -> Path:
    return _build_qwen_vl(out, "2")


def build_qwen2_5_vl(out: Path) -> Path:
    return _build_qwen_vl(out, "2.5")


def _gemma_tokenizer(extra: list[str], **named: str) -> Any:
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", *extra]
    vocab, merges = sentencepiece_bpe(specials, prepend=False)
    return GemmaTokenizer(vocab=vocab, merges=merges, extra_special_tokens=named)


def build_gemma3(out: Path) -> Path:
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    named = {
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
        "image_token": "<image_soft_token>",
    }
    tok = _gemma_tokenizer(["<start_of_turn>", "<end_of_turn>", *named.values()], **named)
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": 32, "width": 32}),
        tokenizer=tok,
        chat_template=GEMMA,
        image_seq_length=4,
    )
    config = Gemma3Config(
        text_config=Gemma3TextConfig(
            **_ids(tok), **TEXT, **TEXT_DIMS, sliding_window=64, layer_types=None
        ),
        vision_config=SiglipVisionConfig(**SIGLIP),
        mm_tokens_per_image=4,
        boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"),
    )
    return _finish(Gemma3ForConditionalGeneration(config), processor, out)


def build_paligemma(out: Path) -> Path:
    """As published: PaliGemma ships no chat template."""
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
        SiglipVisionConfig,
    )

    tok = _gemma_tokenizer(["<image>"], image_token="<image>")
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(**SIGLIP, projection_dim=32),
        text_config=GemmaConfig(**_ids(tok), **TEXT, **TEXT_DIMS),
        projection_dim=32,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    config.text_config.num_image_tokens = 16
    return _finish(PaliGemmaForConditionalGeneration(config), processor, out)


def _idefics_like(out: Path, smol: bool) -> Path:
    import transformers as tf

    specials = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    specials += [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    if smol:
        base = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        vocab, merges = byte_level_bpe(base + specials)
        tok = tf.GPT2Tokenizer(
            vocab=vocab,
            merges=merges,
            bos_token="<|im_start|>",
            eos_token="<end_of_utterance>",
            pad_token="<|endoftext|>",
            unk_token="<|endoftext|>",
        )
        tok.add_special_tokens({"additional_special_tokens": base + specials})
    else:
        base = ["<|begin_of_text|>", "<|end_of_text|>"]
        vocab, merges = byte_level_bpe(base + specials)
        bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        tok = tf.PreTrainedTokenizerFast(
            tokenizer_object=bpe,
            bos_token="<|begin_of_text|>",
            eos_token="<end_of_utterance>",
            pad_token="<|end_of_text|>",
        )
    prefix = "SmolVLM" if smol else "Idefics3"
    image_processor = getattr(tf, f"{prefix}ImageProcessorPil")(
        size={"longest_edge": 64}, max_image_size={"longest_edge": 32}
    )
    vision = {**SIGLIP, "image_size": 32}
    kwargs: dict[str, Any] = {"image_seq_len": 4, "chat_template": SMOLVLM if smol else IDEFICS}
    if smol:
        kwargs["video_processor"] = ImagesOnlyVideoProcessor()
    processor = images_only(getattr(tf, f"{prefix}Processor"))(
        image_processor=image_processor, tokenizer=tok, **kwargs
    )
    text = tf.LlamaConfig(**_ids(tok), **TEXT, **TEXT_DIMS)
    config = getattr(tf, f"{prefix}Config")(
        vision_config=vision,
        text_config=text,
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    model = getattr(tf, f"{prefix}ForConditionalGeneration")(config)
    return _finish(model, processor, out, "SmolVLMVideoProcessor" if smol else "")


def build_idefics3(out: Path) -> Path:
    return _idefics_like(out, smol=False)


def build_smolvlm(out: Path) -> Path:
    return _idefics_like(out, smol=True)


def build_llava_next(out: Path) -> Path:
    """LLaVA-NeXT on a Mistral-style language model with a Llama 2 SentencePiece tokenizer."""
    from transformers import (
        CLIPVisionConfig,
        LlamaTokenizer,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
        MistralConfig,
    )

    vocab, merges = sentencepiece_bpe(["<unk>", "<s>", "</s>", "<image>"], prepend=True)
    tok = LlamaTokenizer(vocab=vocab, merges=merges)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    pinpoints = [[32, 32], [32, 64], [64, 32]]
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessorPil(
            size={"shortest_edge": 32},
            crop_size={"height": 32, "width": 32},
            image_grid_pinpoints=pinpoints,
        ),
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=MISTRAL,
    )
    clip = {**SIGLIP, "projection_dim": 32}
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**clip),
        text_config=MistralConfig(**_ids(tok), **TEXT, **TEXT_DIMS, sliding_window=None),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    return _finish(LlavaNextForConditionalGeneration(config), processor, out)


FAMILIES: dict[str, Callable[[Path], Path]] = {
    "llava_onevision": build_llava_onevision,
    "qwen2_vl": build_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
    "gemma3": build_gemma3,
    "idefics3": build_idefics3,
    "smolvlm": build_smolvlm,
    "paligemma": build_paligemma,
    "llava_next": build_llava_next,
}


def build_family(name: str, out: Path) -> Path:
    """Build the tiny `name` checkpoint into `out` (deterministic weights)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(SEED)
    return FAMILIES[name](out)
