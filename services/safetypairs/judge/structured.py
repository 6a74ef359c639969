"""Constrained decoding with lm-format-enforcer: generation can only produce text that a JSON
schema (or a regular expression) accepts, so every answer parses whatever the weights are.

lm-format-enforcer's own transformers integration imports names transformers 5 removed, so
the two small pieces it provides are built here on its core (TokenEnforcer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import torch
from lmformatenforcer import CharacterLevelParser, JsonSchemaParser, RegexParser
from lmformatenforcer.tokenenforcer import TokenEnforcer, TokenEnforcerTokenizerData
from transformers import LogitsProcessor, StoppingCriteria

from safetypairs.judge.prompts import RateAnswer

_REGEX_SPECIAL = re.compile(r"([.^$*+?{}\[\]\\|()])")


def _regex_literal(text: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\1", text)


@lru_cache(maxsize=4)
def tokenizer_data(tokenizer: Any, eos: int) -> TokenEnforcerTokenizerData:
    """The enforcer's view of a vocabulary (built once per tokenizer: it walks every token);
    `eos` is the token that ends an answer."""
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

    return TokenEnforcerTokenizerData(regular, decode, eos, False, vocab_size)


def _printable(text: str) -> bool:
    """Tokens the enforcer may offer: no partial UTF-8 sequence (a byte token decodes to
    U+FFFD and leads the enforcer into dead ends), no control character (the enforcer would
    let one into a JSON string, where JSON forbids it; answers are therefore one line) and no
    "|": lm-format-enforcer 0.11's JSON parser takes a "|" inside a string for the end of the
    answer, so a proposal writing one was cut off there and dropped."""
    return (
        bool(text)
        and "\ufffd" not in text
        and "|" not in text
        and all(" " <= ch != "\x7f" for ch in text)
    )


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
        stop_ids: Sequence[int],
        rows_per_parser: int = 1,
    ) -> None:
        data = tokenizer_data(tokenizer, stop_ids[0])
        self._enforcers = [TokenEnforcer(data, p) for p in parsers]
        self._rows_per_parser = rows_per_parser
        self._prompt_length = prompt_length
        self._stops = set(stop_ids)
        self._eos = stop_ids[0]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(input_ids.tolist()):
            generated = ids[self._prompt_length :]
            if self._stops.intersection(generated):
                mask[row] = 0.0
                continue
            enforcer = self._enforcers[row // self._rows_per_parser]
            allowed = enforcer.get_allowed_tokens(ids).allowed_tokens
            # A dead end (no allowed token) ends the row; the caller's parser reports it.
            mask[row, allowed or [self._eos]] = 0.0
        return scores + mask


def check_reachable(tokenizer: Any, parser: CharacterLevelParser, ids: list[int], eos: int) -> None:
    """ValueError unless the constraint lets the model write `ids` (an answer as this
    tokenizer writes it) token by token, so constrained generation can reach every answer."""
    enforcer = TokenEnforcer(tokenizer_data(tokenizer, eos), parser)
    prompt = [eos]
    for step, token in enumerate(ids):
        allowed = enforcer.get_allowed_tokens(prompt + ids[:step]).allowed_tokens
        if token not in allowed:
            text = tokenizer.decode(ids[: step + 1])
            raise ValueError(
                f"the answer constraint does not allow token {step} ({text!r} so far) of an "
                "answer as this tokenizer writes it"
            )


def verdict_pattern(
    answer: RateAnswer, labels: Sequence[str], rationale_chars: int | None = None
) -> str:
    """A regular expression for a whole verdict answer with one of `labels`, and a rationale of
    up to `rationale_chars` characters when given."""
    pattern = (
        _regex_literal(answer.open)
        + f"({_regex_literal(answer.safe)}|{_regex_literal(answer.unsafe)})"
        + _regex_literal(answer.category)
        + "("
        + "|".join(_regex_literal(x) for x in labels)
        + ")"
    )
    if rationale_chars:
        pattern += _regex_literal(answer.rationale) + '[^"\\\\]{1,' + str(rationale_chars) + "}"
    return pattern + _regex_literal('"}')


class Cancelled(StoppingCriteria):
    """Stops generation once every caller in the batch has gone away (deadline, disconnect)."""

    def __init__(self, checks: Sequence[Callable[[], bool]]) -> None:
        self._checks = checks

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kw: Any) -> torch.BoolTensor:
        done = all(check() for check in self._checks)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class StopAtQuote(StoppingCriteria):
    """Ends a row once its generated text holds a double quote (the rationale string ends)."""

    def __init__(self, tokenizer: Any, start: int) -> None:
        self._tokenizer = tokenizer
        self._start = start

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kw: Any) -> torch.BoolTensor:
        texts = self._tokenizer.batch_decode(input_ids[:, self._start :], skip_special_tokens=True)
        return torch.tensor(['"' in t for t in texts], dtype=torch.bool, device=input_ids.device)
