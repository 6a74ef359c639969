"""The embedded default judge: a tiny LLaVA (CLIP vision tower, Qwen2 language model) with
random weights and a byte-level BPE tokenizer trained here, on the judge's own prompts.

No model hub is reachable where this project is built, so the default stack builds this
locally and deterministically and loads it through the same `from_pretrained` path as a real
checkpoint (LlavaGuard, Qwen2.5-VL, ...). Its config carries the untrained mark: every verdict
and proposal it gives says so, and they mean nothing about the image.
"""

from __future__ import annotations

from pathlib import Path

from safetypairs.contract.policy import default_policy
from safetypairs.serving.default_models import DefaultModel

NAME = "default-judge"
BUILD_VERSION = "1"
IMAGE_SIZE = 112  # 8x8 patches of 14 px: 64 image tokens
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
# The Qwen2 chat format, with LLaVA's <image> placeholder.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
NOTICE = (
    "UNTRAINED: the embedded default judge is a tiny LLaVA with random weights; its verdicts "
    "and edit proposals are well-formed (read from rating-token probabilities and constrained "
    "generation) and mean nothing about the image. Set SAFETYPAIRS_JUDGE_MODEL to a real "
    "checkpoint (e.g. LlavaGuard, Qwen2.5-VL)."
)


def _corpus() -> list[str]:
    """Text the tokenizer learns from: the judge's prompts over the built-in policy and the
    answers they ask for, so the tiny vocabulary covers what the judge reads and writes."""
    from safetypairs.judge.engine import ACTIONS
    from safetypairs.judge.prompts import load_template

    policy = default_policy()
    rate, propose = load_template("rate"), load_template("propose")
    categories = [c.to_dict() for c in policy.categories]
    texts = [rate.render(policy=policy, categories=categories)]
    a = rate.answer
    assert a is not None
    for c in policy.categories:
        label = a.label(c.code, c.name)
        texts.append(f"{a.open}{a.unsafe}{a.category}{label}{a.rationale}The image shows{a.safe}")
        for direction, actions in ACTIONS.items():
            texts.append(
                propose.render(
                    policy=policy, category=c.to_dict(), direction=direction, actions=actions
                )
            )
            texts += [f'{{"action": "{x}", "element": "the ", "instruction": "' for x in actions]
    texts.append(f'{a.open}{a.safe}{a.category}{a.none_category}"}}')
    return texts * 4


def _write(work: Path) -> None:
    """The tiny judge: its tokenizer trained here, its processor, random weights."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
        Qwen2Config,
    )

    from safetypairs.serving.model_refs import UNTRAINED_MARK

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>"},
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        ),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=IMAGE_SIZE,
            patch_size=14,
            projection_dim=64,
        ),
        text_config=Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    setattr(config, UNTRAINED_MARK, True)
    config.safetypairs_notice = NOTICE
    torch.manual_seed(0)  # deterministic weights: every build is the same model
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(work)
    processor.save_pretrained(work)


DEFAULT = DefaultModel(
    "judge",
    NAME,
    BUILD_VERSION,
    "config.json",
    _write,
    requires=("torch", "tokenizers", "transformers"),
)
# The judge's default by the names the service, tests and benchmarks use.
default_judge_dir = DEFAULT.directory
ensure_default_judge = DEFAULT.ensure
build_default_judge = DEFAULT.build
