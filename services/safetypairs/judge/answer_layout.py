"""Where the rating and the category are read in the teacher-forced answer, checked not assumed.

The forced answer must be the exact token sequence the model would have written. Tokenizing
its pieces one by one is not that: a SentencePiece tokenizer (Llama 2, Mistral) starts every
piece with a space marker, so `{"rating": "` + `Unsafe` becomes `{"rating": " Unsafe` and the
rating is read from a bare space token. So every answer is tokenized whole, once, and the
token where each piece begins is found from the offsets; a piece that begins inside a token
(the tokenizer merged it with the text before) cannot be read from one forward pass, and the
model or the policy is refused, naming why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from safetypairs.contract.errors import InvalidInput, ModelError
from safetypairs.contract.policy import Category, Policy
from safetypairs.judge.prompts import RateAnswer


@dataclass(frozen=True)
class CategoryReader:
    """How a policy's categories are read: `prefix` is forced after the rating word (the
    category piece and the token path the codes share); each candidate is told apart by one
    token at some depth along the path: (code, depth, token). The candidate "" is the answer
    that no category applies."""

    prefix: tuple[int, ...]
    path: tuple[int, ...]
    keys: tuple[tuple[str, int, int], ...]


class _NotABoundary(Exception):
    """A piece of the answer begins inside a token."""


def tokenize(
    tokenizer: Any, text: str, starts: Sequence[int]
) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """The ids of `text` tokenized whole, their character spans, and the index of the token
    beginning at each character offset in `starts` (_NotABoundary when one falls inside a
    token)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    where = []
    for start in starts:
        # The first token starting at or after `start`; no token before it may run past it.
        index = next((i for i, (a, b) in enumerate(offsets) if a >= start and b > a), None)
        if index is None or (index > 0 and offsets[index - 1][1] > start):
            raise _NotABoundary
        where.append(index)
    return ids, offsets, where


class AnswerLayout:
    """The forced answer of one tokenizer and answer format, verified when built (ModelError)."""

    def __init__(
        self, tokenizer: Any, answer: RateAnswer, label: Callable[[Category | None], str]
    ) -> None:
        self._tokenizer = tokenizer
        self._answer = answer
        self._label = label
        a = answer
        rest = a.category + label(None)
        try:
            safe, _, (r_safe,) = tokenize(tokenizer, a.open + a.safe + rest, [len(a.open)])
            unsafe, _, (r_unsafe,) = tokenize(tokenizer, a.open + a.unsafe + rest, [len(a.open)])
        except _NotABoundary:
            raise ModelError(
                f"the rating word does not begin a token for this tokenizer after {a.open!r}, "
                "so its probability cannot be read from one forward pass; change the answer "
                "format in the rate template"
            ) from None
        if r_safe != r_unsafe or safe[:r_safe] != unsafe[:r_unsafe]:
            raise ModelError("this tokenizer writes the answer's opening differently per rating")
        if safe[r_safe] == unsafe[r_unsafe]:
            raise ModelError(
                f"the rating words {a.safe!r} and {a.unsafe!r} begin with the same token for "
                "this tokenizer, so one forward pass cannot tell them apart; change them in the "
                "rate template"
            )
        self.open: list[int] = unsafe[:r_unsafe]  # forced before the rating word
        self.safe_token, self.unsafe_token = safe[r_safe], unsafe[r_unsafe]
        self._readers: dict[Policy, CategoryReader] = {}

    def label_ids(self, category: Category | None) -> tuple[list[int], list[int]]:
        """The forced tokens from the rating word to where the category's label begins, and
        the label's own tokens, all from one tokenization of the unsafe answer."""
        a = self._answer
        label = self._label(category)
        head = a.open + a.unsafe + a.category
        text = head + label + a.rationale
        try:
            ids, spans, (rating, begins) = tokenize(self._tokenizer, text, [len(a.open), len(head)])
        except _NotABoundary:
            name = category.code if category else "none"
            raise InvalidInput(
                f"category {name}'s label does not begin a token for this judge's tokenizer "
                f"after {a.category!r}, so it cannot be read from one forward pass"
            ) from None
        end = len(head) + len(label)  # the label's last token may run into the quote after it
        stop = next((i for i, (s, _) in enumerate(spans) if s >= end), len(ids))
        return ids[rating:begins], ids[begins:stop]

    def category_reader(self, policy: Policy) -> CategoryReader:
        """How this policy's categories are read from one forward pass; InvalidInput when two
        of them cannot be told apart by one token."""
        cached = self._readers.get(policy)
        if cached is not None:
            return cached
        heads, labels = {}, {}
        for category in [*policy.categories, None]:
            code = category.code if category else ""
            heads[code], labels[code] = self.label_ids(category)
        prefix = heads[""]
        if any(h != prefix for h in heads.values()):
            raise InvalidInput(
                f"the answer before the category is tokenized differently per category after "
                f"{self._answer.category!r}; give the categories codes that begin with a letter"
            )
        coded = [ids for code, ids in labels.items() if code]
        shortest = min(len(ids) for ids in coded)
        path: list[int] = []
        for position in range(shortest - 1):  # stop before the last token of the shortest
            tokens = {ids[position] for ids in coded}
            if len(tokens) > 1:
                break
            path.append(tokens.pop())
        keys: list[tuple[str, int, int]] = []
        for code, ids in labels.items():
            depth = next(
                (d for d in range(len(path)) if d >= len(ids) or ids[d] != path[d]), len(path)
            )
            if depth >= len(ids):
                raise InvalidInput(f"category {code or 'none'}'s label is a prefix of another's")
            keys.append((code, depth, ids[depth]))
        seen: dict[tuple[int, int], str] = {}
        for code, depth, token in keys:
            other = seen.setdefault((depth, token), code)
            if other != code:
                raise InvalidInput(
                    f"categories {other or 'none'!r} and {code or 'none'!r} begin with the same "
                    "token for this judge's tokenizer, so one forward pass cannot tell them "
                    "apart; give them distinct codes (e.g. not one code a prefix of another)"
                )
        reader = CategoryReader(tuple(prefix), tuple(path), tuple(keys))
        if len(self._readers) > 256:  # custom policies come and go; bound the cache
            self._readers.clear()
        self._readers[policy] = reader
        return reader


def continuation_ids(tokenizer: Any, text: str) -> list[int]:
    """`text` tokenized as it continues other text (no word-start marker before it): how
    constrained generation, which sees each token as it follows a "0", writes it."""
    try:
        ids, _, (begins,) = tokenize(tokenizer, "0" + text, [1])
    except _NotABoundary:
        raise ModelError(f"this tokenizer merges {text[:1]!r} with the text before it") from None
    return ids[begins:]
