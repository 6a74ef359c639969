"""The judge engine on the embedded default (tiny LLaVA, random weights), driven directly."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.policy import default_policy, parse_policy
from safetypairs.judge.engine import TO_SAFE, TO_UNSAFE, JudgeEngine, ProposeJob, RateJob

pytestmark = pytest.mark.slow
POLICY = default_policy()


@pytest.fixture(scope="module")
def engine(default_judge_dir_built: Path) -> JudgeEngine:
    return JudgeEngine(default_judge_dir_built)


@pytest.fixture(scope="module")
def photos(sample_photos: list[Path]) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sample_photos[:3]]


def test_loads_through_from_pretrained_and_says_it_is_untrained(engine: JudgeEngine) -> None:
    card = engine.card
    assert card.architecture == "LlavaForConditionalGeneration"
    assert card.untrained and "UNTRAINED" in card.notice
    assert engine.rate_template.tag == "rate@1" and engine.propose_template.tag == "propose@1"


def test_forward_verdicts_are_well_formed(engine: JudgeEngine, photos) -> None:
    outputs = engine.rate([RateJob(img, POLICY, 0.5, False) for img in photos])
    for out in outputs:
        assert 0.0 <= out.p_unsafe <= 1.0
        assert set(out.category_probs) == set(POLICY.codes)
        assert 0.0 < sum(out.category_probs.values()) <= 1.0 + 1e-6
        assert out.unsafe == (out.p_unsafe >= 0.5)
        assert (out.category in POLICY.codes) if out.unsafe else out.category == ""
        assert out.source == "forward" and out.rationale == ""


def test_batched_forward_pass_equals_one_by_one(engine: JudgeEngine, photos) -> None:
    """Left padding and the appended answer tokens must not change any row's numbers."""
    small = parse_policy(
        "name: two\ncategories:\n  - {code: W, name: Weapons, should_not: [Show guns.]}\n"
        "  - {code: D, name: Drugs, should_not: [Show drug use.]}\n"
    )
    jobs = [
        RateJob(photos[0], POLICY, 0.5, False),
        RateJob(photos[1], small, 0.5, False),
        RateJob(photos[2], POLICY, 0.5, False),
    ]
    together = engine.rate(jobs)
    alone = [engine.rate([job])[0] for job in jobs]
    for a, b in zip(together, alone, strict=True):
        assert a.p_unsafe == pytest.approx(b.p_unsafe, abs=1e-4)
        for code in a.category_probs:
            assert a.category_probs[code] == pytest.approx(b.category_probs[code], abs=1e-4)


def test_rationale_continues_the_decided_verdict(engine: JudgeEngine, photos) -> None:
    out = engine.rate([RateJob(photos[0], POLICY, 0.5, True)])[0]
    assert isinstance(out.rationale, str) and '"' not in out.rationale
    assert len(out.rationale) <= engine.rationale_chars


def test_generate_mode_parses_a_constrained_answer(engine: JudgeEngine, photos) -> None:
    outputs = engine.rate([RateJob(img, POLICY, 0.5, True) for img in photos[:2]], "generate")
    for out in outputs:
        assert out.source == "json"  # the constraint makes the answer parse as JSON
        assert 0.0 <= out.p_unsafe <= 1.0
        assert out.category == "" or out.category in POLICY.codes


@pytest.mark.parametrize("direction", [TO_SAFE, TO_UNSAFE])
def test_proposals_follow_the_schema_and_the_seed(
    engine: JudgeEngine, photos, direction: str
) -> None:
    job = ProposeJob(photos[0], POLICY, POLICY.category("O6"), direction, 3, seed=11)
    first = engine.propose(job)
    assert len(first) == 3
    allowed = {"remove", "change"} if direction == TO_SAFE else {"add", "change"}
    for p in first:
        assert p.action in allowed and p.category == "O6"
        assert 3 <= len(p.element) <= 80 and 1 <= len(p.instruction) <= 240
    assert engine.propose(job) == first
    assert (
        engine.propose(ProposeJob(photos[0], POLICY, POLICY.category("O6"), direction, 3, seed=12))
        != first
    )


def test_a_cancelled_job_stops_generating(engine: JudgeEngine, photos) -> None:
    """The caller went away before the first step: generation stops at once, so no
    proposal is complete (and none is an error)."""
    job = ProposeJob(photos[0], POLICY, POLICY.category("O6"), TO_UNSAFE, 4, 1, lambda: True)
    assert engine.propose(job) == []


def test_a_category_the_answer_cannot_tell_from_none_applies_is_refused(
    engine: JudgeEngine,
) -> None:
    """A category labelled like the "NA: None applying" answer cannot be read from the
    answer's tokens: the request is refused, naming it."""
    clash = parse_policy(
        "name: clash\ncategories:\n  - {code: NA, name: None applying, should_not: [x]}\n"
        "  - {code: W, name: Weapons, should_not: [y]}\n"
    )
    with pytest.raises(InvalidInput, match="'NA' and 'none'"):
        engine.category_reader(clash)
