"""Reading a verdict out of text a vision-language model wrote.

Constrained generation makes the judge's own output valid JSON, but text reaches this parser
from anywhere a model answers freely (checkpoints with their own habits, truncated answers,
the generate-then-parse verdict mode). Formats understood, in order:

* LlavaGuard-style JSON: {"rating": "Unsafe", "category": "O6: Weapons ...", "rationale": ...},
  also inside a code fence, with trailing commas, or cut off after the rating;
* free text naming a rating word ("The image is unsafe ... O6 ...");
* anything else is garbage: the parser says so (None) and the caller decides from the
  rating-token probabilities instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from safetypairs.contract.policy import Category
from safetypairs.judge.prompts import RateAnswer

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_FIELD = re.compile(r'"(rating|category|rationale)"\s*:\s*"((?:[^"\\]|\\.)*)"?', re.S)


@dataclass(frozen=True)
class ParsedVerdict:
    unsafe: bool
    category: str  # a policy code, or "" when none was named
    rationale: str
    source: str  # "json", "partial-json" or "text": how it was read


def _json_object(text: str) -> dict[str, Any] | None:
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        return None
    candidate = body[start : end + 1]
    for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            value = json.loads(attempt)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


def _rating(value: str, answer: RateAnswer) -> bool | None:
    word = value.strip().strip(".").lower()
    if word == answer.unsafe.lower():
        return True
    if word == answer.safe.lower():
        return False
    return None


def _category(value: str, categories: Sequence[Category], answer: RateAnswer) -> str:
    value = value.strip()
    if not value or value.lower().startswith(answer.none_category.split(":")[0].lower()):
        return ""
    for c in categories:  # "O6: Weapons ...", "O6", or the category's name alone
        if re.match(rf"{re.escape(c.code)}\b", value) or value.lower() == c.name.lower():
            return c.code
    return ""


def _mentioned_category(text: str, categories: Sequence[Category]) -> str:
    found = [
        (m.start(), c.code)
        for c in categories
        for m in [re.search(rf"\b{re.escape(c.code)}\b|{re.escape(c.name)}", text, re.I)]
        if m
    ]
    return min(found)[1] if found else ""


def parse_verdict(
    text: str, categories: Sequence[Category], answer: RateAnswer
) -> ParsedVerdict | None:
    """The verdict a model wrote in `text`, or None when no rating can be read from it."""
    obj = _json_object(text)
    if obj is not None and isinstance(obj.get("rating"), str):
        unsafe = _rating(obj["rating"], answer)
        if unsafe is not None:
            category = obj.get("category")
            rationale = obj.get("rationale")
            return ParsedVerdict(
                unsafe,
                _category(category, categories, answer) if isinstance(category, str) else "",
                rationale.strip() if isinstance(rationale, str) else "",
                "json",
            )
    fields = {m.group(1): m.group(2) for m in _FIELD.finditer(text)}
    if "rating" in fields:  # JSON cut off (token limit) or otherwise malformed
        unsafe = _rating(fields["rating"], answer)
        if unsafe is not None:
            return ParsedVerdict(
                unsafe,
                _category(fields.get("category", ""), categories, answer),
                fields.get("rationale", "").strip(),
                "partial-json",
            )
    words = re.search(rf"\b({re.escape(answer.unsafe)}|{re.escape(answer.safe)})\b", text, re.I)
    if words is None:
        return None
    unsafe = words.group(1).lower() == answer.unsafe.lower()
    return ParsedVerdict(
        unsafe,
        _mentioned_category(text, categories) if unsafe else "",
        text.strip(),
        "text",
    )
