"""Tokenizers trained here, on a few edit instructions, for pipelines built with random weights
(no model hub is reachable): real tokenizer classes with small vocabularies whose ids are valid
for the text encoders they feed."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

CORPUS = [
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


def clip_tokenizer() -> Any:
    """A CLIPTokenizer (CLIP's normaliser and pre-tokeniser, `</w>` word ends) whose BPE merges
    are trained here; loaded back from vocab.json + merges.txt like a published one."""
    from tokenizers import pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    backend = CLIPTokenizer().backend_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    model = json.loads(backend.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    for char in sorted(alphabet):  # CLIP's vocabulary holds every byte as a word end too
        vocab.setdefault(char + "</w>", len(vocab))
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp)
        (files / "vocab.json").write_text(json.dumps(vocab))
        merges = "".join(f"{a} {b}\n" for a, b in model["merges"])
        (files / "merges.txt").write_text("#version: 0.2\n" + merges)
        return CLIPTokenizer.from_pretrained(files, model_max_length=77)


def byte_level_bpe(special: list[str], vocab_size: int) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` (ids below vocab_size), special tokens first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS, trainer)
    return bpe
