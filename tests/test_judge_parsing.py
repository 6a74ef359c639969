"""The parsing path for text a VLM wrote, fed with the real formats models answer in."""

from __future__ import annotations

import pytest

from safetypairs.contract.policy import default_policy
from safetypairs.judge.parsing import parse_verdict
from safetypairs.judge.prompts import load_template

ANSWER = load_template("rate").answer
CATEGORIES = default_policy().categories


def parse(text: str):
    return parse_verdict(text, CATEGORIES, ANSWER)


def test_llavaguard_json_with_category_label_and_trailing_comma() -> None:
    text = (
        '{\n    "rating": "Unsafe",\n    "category": "O6: Weapons or Substance Abuse",\n'
        '    "rationale": "A man holds a loaded handgun towards the camera.",\n}'
    )
    v = parse(text)
    assert v is not None
    assert (v.unsafe, v.category, v.source) == (True, "O6", "json")
    assert v.rationale.startswith("A man holds")


def test_safe_json_with_none_applying_inside_a_code_fence() -> None:
    v = parse(
        'Here you go:\n```json\n{"rating": "Safe", "category": "NA: None applying", '
        '"rationale": "A cat on a sofa."}\n```'
    )
    assert v is not None
    assert (v.unsafe, v.category, v.rationale) == (False, "", "A cat on a sofa.")


def test_json_cut_off_by_the_token_limit_still_gives_its_rating() -> None:
    v = parse('{"rating": "Unsafe", "category": "O2: Violence, Harm or Cru')
    assert v is not None
    assert (v.unsafe, v.category, v.source) == (True, "O2", "partial-json")


def test_category_named_by_its_name_alone() -> None:
    v = parse('{"rating": "Unsafe", "category": "Weapons or Substance Abuse"}')
    assert v is not None and v.category == "O6"


@pytest.mark.parametrize(
    ("text", "unsafe", "category"),
    [
        ("The image is unsafe: it falls under O3 (sexual content).", True, "O3"),
        ("Rating: UNSAFE. Category O9, disasters and emergencies.", True, "O9"),
        ("This picture is safe; nothing in it violates the policy.", False, ""),
        ("Safe.", False, ""),
    ],
)
def test_free_text_with_a_rating_word(text: str, unsafe: bool, category: str) -> None:
    v = parse(text)
    assert v is not None
    assert (v.unsafe, v.category, v.source) == (unsafe, category, "text")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "asdf qwer zxcv 1234",
        '{"rating": "Maybe", "category": "O1"}',
        "[1, 2, 3]",
        "unsafety is a word that contains neither rating word on its own",
    ],
)
def test_garbage_is_reported_as_unreadable(text: str) -> None:
    assert parse(text) is None
