"""Constrained decoding with lm-format-enforcer: generation can only produce text that a JSON
schema (or a regular expression) accepts, so every answer parses whatever the weights are.

lm-format-enforcer's own transformers integration imports names transformers 5 removed, so
the two small pieces it provides are built here on its core (TokenEnforcer).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch
from lmformatenforcer import CharacterLevelParser, JsonSchemaParser, RegexParser
from lmformatenforcer.tokenenforcer import TokenEnforcer, TokenEnforcerTokenizerData
from transformers import LogitsProcessor


@lru_cache(maxsize=4)
def tokenizer_data(tokenizer: Any) -> TokenEnforcerTokenizerData:
    """The enforcer's view of a vocabulary (built once per tokenizer: it walks every token)."""
    vocab_size = len(tokenizer)
    # Chat-template markers are often added tokens that are not in all_special_ids.
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    token_0 = tokenizer.encode("0", add_special_tokens=False)[-1]
    regular = []
    for token in range(vocab_size):
        if token in special:
            continue
        # Decoding after "0" keeps a word-start token's leading space, which decoding alone drops.
        after_0 = tokenizer.decode([token_0, token])[1:]
        alone = tokenizer.decode([token])
        if not _printable(after_0):
            continue
        regular.append((token, after_0, len(after_0) > len(alone)))

    def decode(tokens: list[int]) -> str:
        return tokenizer.decode(tokens).rstrip("\ufffd")

    return TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, vocab_size)


def _printable(text: str) -> bool:
    """Tokens the enforcer may offer: no partial UTF-8 sequence (a byte token decodes to
    U+FFFD and leads the enforcer into dead ends) and no control character (the enforcer would
    let one into a JSON string, where JSON forbids it). Answers are therefore one line."""
    return bool(text) and "\ufffd" not in text and all(" " <= ch != "\x7f" for ch in text)


def json_parser(schema: dict[str, Any]) -> CharacterLevelParser:
    return JsonSchemaParser(schema)


def regex_parser(pattern: str) -> CharacterLevelParser:
    return RegexParser(pattern)


class EnforcedLogits(LogitsProcessor):
    """Masks every token the parser does not allow next. Rows that already ended are left
    alone (generate pads them); `prompt_length` is where the generated part begins."""

    def __init__(
        self,
        tokenizer: Any,
        parsers: Sequence[CharacterLevelParser],
        prompt_length: int,
        rows_per_parser: int = 1,
    ) -> None:
        data = tokenizer_data(tokenizer)
        self._enforcers = [TokenEnforcer(data, p) for p in parsers]
        self._rows_per_parser = rows_per_parser
        self._prompt_length = prompt_length
        self._eos = tokenizer.eos_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(input_ids.tolist()):
            generated = ids[self._prompt_length :]
            if self._eos in generated:
                mask[row] = 0.0
                continue
            enforcer = self._enforcers[row // self._rows_per_parser]
            allowed = enforcer.get_allowed_tokens(ids).allowed_tokens
            # A dead end (no allowed token) ends the row; the caller's parser reports it.
            mask[row, allowed or [self._eos]] = 0.0
        return scores + mask
