"""Why a dataset holds no (or few) accepted pairs: every rejection reason with its count, the
nearest miss of each rule (the best figure seen against the figure the rule asks for) and the
flag that would let it through. `generate` prints this whenever a run accepted nothing."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from safetypairs.contract.pair_record import ACCEPTED, PairRecord
from safetypairs.pairs.criteria import (
    CHANGED_TOO_MUCH,
    NO_FLIP,
    NOT_PRESERVED,
    SOURCE_AMBIGUOUS,
    TO_UNSAFE,
    WRONG_CATEGORY,
    Criteria,
)


@dataclass(frozen=True)
class Miss:
    """One rule's nearest miss: the best `seen` against `needed`, and what would change it."""

    reason: str
    seen: float
    needed: str
    advice: str

    def to_json(self) -> dict[str, Any]:
        return {"seen": round(self.seen, 4), "needed": self.needed, "advice": self.advice}


def _ambiguous(records: list[PairRecord], c: Criteria) -> Miss | None:
    """Sources rated within the margin: the one farthest from the threshold."""
    p = [r.a.p_unsafe for r in records if r.a is not None and r.a.p_unsafe is not None]
    if not p:
        return None
    best = max(abs(x - c.threshold) for x in p)
    return Miss(
        SOURCE_AMBIGUOUS,
        best,
        f"P(unsafe) <= {c.threshold - c.margin:.3f} or >= {c.threshold + c.margin:.3f}",
        f"sources were rated P(unsafe) {min(p):.3f} to {max(p):.3f}, at most {best:.3f} from "
        f"--threshold {c.threshold} where --margin {c.margin} is needed: --margin "
        f"{math.floor(best * 1000) / 1000:.3f} (or a --threshold nearer them) lets them in",
    )


def _no_flip(records: list[PairRecord], c: Criteria) -> Miss | None:
    """Candidates whose edit did not cross to the other side: how far the best one got."""
    gaps = []
    for r in records:
        if r.a is None or r.b is None or r.a.p_unsafe is None or r.b.p_unsafe is None:
            continue
        unsafe_p, safe_p = (
            (r.b.p_unsafe, r.a.p_unsafe)
            if r.direction == TO_UNSAFE
            else (r.a.p_unsafe, r.b.p_unsafe)
        )
        # How far past the threshold each side got (the pair needs both >= margin).
        gaps.append(min(unsafe_p - c.threshold, c.threshold - safe_p))
    if not gaps:
        return None
    best = max(gaps)
    advice = f"the best candidate was {best:+.3f} past the threshold on its weaker side: " + (
        f"--margin {max(best, 0):.3f} would accept it"
        if best >= 0
        else "no edit crossed the threshold; more --proposals/--attempts, other --seed, or "
        "a trained judge and editor"
    )
    return Miss(NO_FLIP, best, f">= margin {c.margin} on both sides", advice)


def _figures(records: list[PairRecord], name: str) -> list[float]:
    """One similarity figure (`ssim_outside`, `changed_fraction`) of every record that has it."""
    values = (getattr(r.similarity, name) if r.similarity else None for r in records)
    return [v for v in values if v is not None]


def _changed(records: list[PairRecord], c: Criteria) -> Miss | None:
    least = min(_figures(records, "changed_fraction"), default=None)
    if least is None:
        return None
    return Miss(
        CHANGED_TOO_MUCH,
        least,
        f"<= --max-changed {c.max_changed_fraction}",
        f"the smallest edit changed {least:.1%} of the image: --max-changed {least:.2f} "
        "would pass it (an editor that repaints everything needs a trained checkpoint)",
    )


def _preserved(records: list[PairRecord], c: Criteria) -> Miss | None:
    best = max(_figures(records, "ssim_outside"), default=None)
    if best is None:
        return None
    return Miss(
        NOT_PRESERVED,
        best,
        f">= --min-ssim {c.min_ssim_outside}",
        f"the best SSIM outside the edit was {best:.3f}: --min-ssim {best:.2f} would pass it",
    )


_NEAREST = {
    SOURCE_AMBIGUOUS: _ambiguous,
    NO_FLIP: _no_flip,
    CHANGED_TOO_MUCH: _changed,
    NOT_PRESERVED: _preserved,
}


def explain(records: list[PairRecord], criteria: Criteria) -> dict[str, Any]:
    """{"accepted": n, "rejections": {reason: count}, "nearest_miss": {reason: {...}}} over
    a dataset's candidate records (every reason of a candidate counts)."""
    counts: Counter[str] = Counter()
    by_reason: dict[str, list[PairRecord]] = {}
    for r in records:
        for reason in r.reasons or ():
            counts[reason] += 1
            by_reason.setdefault(reason, []).append(r)
    misses = {}
    for reason, rows in by_reason.items():
        finder = _NEAREST.get(reason)
        miss = finder(rows, criteria) if finder else None
        if miss is not None:
            misses[reason] = miss.to_json()
    if WRONG_CATEGORY in counts:
        misses[WRONG_CATEGORY] = {
            "advice": "the edits flipped the rating in another category: choose --categories "
            "the judge rates them in, or more --proposals"
        }
    return {
        "accepted": sum(r.status == ACCEPTED for r in records),
        "rejections": dict(counts.most_common()),
        "nearest_miss": misses,
    }
