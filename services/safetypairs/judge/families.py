"""What differs between the model families the judge loads, in one place.

The engine drives every image-text-to-text model the same way; a family's adapter says how its
processor wants images (Gemma 3, Idefics3 and SmolVLM want one list of images per prompt),
which token type the answer tokens the engine appends carry (PaliGemma is a prefix-LM: the
prompt attends both ways, the answer only backwards, so the forced answer must be marked as
answer or the position where P(unsafe) is read could see the forced word), the chat template of
a family published without one (PaliGemma), and which tokens end the model's turn.

How answer text is tokenized (the same for every family: the whole answer at once, so a
SentencePiece tokenizer adds no space before each piece) lives in answer_layout.py.

Loading: transformers loads each family's video processor, which needs torchvision. Where
torchvision cannot be used (the CPU install), the family's processor is built with an
images-only stand-in for it; the judge never sends video.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.models.auto.processing_auto import (
    PROCESSOR_MAPPING_NAMES,
    processor_class_from_name,
)
from transformers.video_processing_utils import VideoProcessorMixin

from safetypairs.contract.errors import ModelError

log = logging.getLogger(__name__)

# PaliGemma's processor puts the image tokens and <bos> before the prompt and "\n" after it.
PREFIX_ONLY_TEMPLATE = (
    "{% for message in messages %}{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class Family:
    name: str
    images_per_prompt: bool = False  # the processor wants [[image], [image]], not [image, image]
    answer_token_type: int = 0  # token_type_ids of appended answer tokens (prefix-LM: 1)
    chat_template: str | None = None  # for checkpoints published without one
    end_of_turn: tuple[str, ...] = ()  # tokens that end the model's answer, beside eos

    def images(self, images: list[Any]) -> list[Any]:
        return [[image] for image in images] if self.images_per_prompt else images

    def answer_fill(self, key: str) -> int:
        """The value of per-token input `key` for answer tokens appended after the prompt."""
        if key == "attention_mask":
            return 1
        return self.answer_token_type if key == "token_type_ids" else 0

    def stop_ids(self, tokenizer: Any, generation_config: Any) -> list[int]:
        """Token ids that end an answer: eos, the generation config's, the family's."""
        configured = getattr(generation_config, "eos_token_id", None)
        configured = configured if isinstance(configured, list) else [configured]
        marks = [tokenizer.convert_tokens_to_ids(t) for t in self.end_of_turn]
        ids = [tokenizer.eos_token_id, *configured, *marks]
        known = [i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id]
        return list(dict.fromkeys(known))


FAMILIES = {
    "gemma3": Family("Gemma 3", images_per_prompt=True, end_of_turn=("<end_of_turn>",)),
    "idefics3": Family("Idefics3", images_per_prompt=True, end_of_turn=("<end_of_utterance>",)),
    "smolvlm": Family("SmolVLM", images_per_prompt=True, end_of_turn=("<end_of_utterance>",)),
    "paligemma": Family("PaliGemma", answer_token_type=1, chat_template=PREFIX_ONLY_TEMPLATE),
    "llava_onevision": Family("LLaVA-OneVision", end_of_turn=("<|im_end|>",)),
    "qwen2_vl": Family("Qwen2-VL", end_of_turn=("<|im_end|>",)),
    "qwen2_5_vl": Family("Qwen2.5-VL", end_of_turn=("<|im_end|>",)),
}


def family_for(model_type: str) -> Family:
    return FAMILIES.get(model_type, Family(model_type or "unknown"))


class ImagesOnlyVideoProcessor(VideoProcessorMixin):
    """Stands in for a family's video processor where torchvision cannot be used."""

    num_frames = fps = None  # SmolVLM's chat template reads these even without video

    def __call__(self, videos: Any, **kwargs: Any) -> Any:
        raise ModelError("this judge was loaded without torchvision and takes no video")


def images_only(cls: type) -> type:
    """`cls` (a processor class) accepting ImagesOnlyVideoProcessor as its video processor.
    transformers checks the class of every sub-processor against a name it resolves only when
    torchvision is installed."""

    def check_argument_for_proper_class(self: Any, name: str, argument: Any) -> Any:
        if isinstance(argument, ImagesOnlyVideoProcessor):
            return ImagesOnlyVideoProcessor
        return cls.check_argument_for_proper_class(self, name, argument)

    return type(
        cls.__name__, (cls,), {"check_argument_for_proper_class": check_argument_for_proper_class}
    )


def _missing(exc: ImportError, path: str | Path) -> ModelError:
    return ModelError(
        f"cannot load a judge model from {path}: a package it needs is missing ({exc}); "
        "install the `models` extra (pip install 'safetypairs[models]')"
    )


def load_processor(path: str | Path, trust_remote_code: bool) -> Any:
    """The checkpoint's processor; without torchvision, its family's processor class with an
    images-only video processor. ModelError naming the package when one is missing."""
    try:
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (ImportError, ValueError, OSError) as exc:
        # transformers says so with an ImportError or, with no video config saved, a ValueError
        if "torchvision" not in str(exc).lower():
            if isinstance(exc, ImportError):
                raise _missing(exc, path) from None
            raise
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        name = PROCESSOR_MAPPING_NAMES.get(config.model_type)
        if not name:
            raise _missing(exc, path) from None
        log.info("torchvision is not usable here: loading %s for images only", name)
        try:
            return images_only(processor_class_from_name(name)).from_pretrained(
                path, video_processor=ImagesOnlyVideoProcessor()
            )
        except ImportError as again:
            raise _missing(again, path) from None


def load(
    path: str | Path, dtype: Any, device: str, trust_remote_code: bool
) -> tuple[Any, Any, Family]:
    """Processor, model (eval mode, on `device`) and family adapter of a checkpoint."""
    try:
        processor = load_processor(path, trust_remote_code)
        model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code
        ).to(device)
    except ImportError as exc:
        raise _missing(exc, path) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot load a judge model from {path}: {exc}") from None
    model.eval()
    family = family_for(getattr(model.config, "model_type", ""))
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"  # generation continues every row at the right
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None) and not processor.chat_template:
        if family.chat_template is None:
            raise ModelError(f"the processor in {path} has no chat template")
        processor.chat_template = family.chat_template
    return processor, model, family
