"""What a reviewer is shown: the dataset's candidate pairs, as the page needs them, in order.

Read from committed manifest lines only (a generator may be appending), never written. The
judge's accepted pairs come first, then rejected candidates that have both images (a person's
verdict on those is what the judge-vs-human figures compare against). With `assign` K, a pair
leaves everyone else's queue once K reviewers stand on it; a reviewer always keeps the pairs
they decided, so back and undo reach them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetypairs.contract.pair_record import ACCEPTED, REJECTED, Member, PairRecord, to_json
from safetypairs.contract.review_record import REASONS, ReviewRecord, read_reviews, standing
from safetypairs.pairs.dataset import PairDataset, is_image_path


def reviewable(ds: PairDataset) -> list[PairRecord]:
    """Candidates with an id and both images, judge-accepted first, committed lines only."""
    out, seen = [], set()
    for r in ds.pairs(ACCEPTED, REJECTED):
        if r.id and r.id not in seen and all(is_image_path(_image(m)) for m in (r.a, r.b)):
            seen.add(r.id)
            out.append(r)
    return out


def _image(member: Member | None) -> str | None:
    return member.image if member is not None else None


@dataclass
class Queue:
    root: Path
    reviewer: str
    assign: int | None = None  # K reviewers per pair; None: everyone sees every pair

    def build(self) -> dict[str, Any]:
        ds = PairDataset.read(self.root)
        decided = standing(read_reviews(self.root))
        items = []
        for record in reviewable(ds):
            on_pair = decided.get(str(record.id), {})
            mine = on_pair.get(self.reviewer)
            if mine is None and self.assign is not None and len(on_pair) >= self.assign:
                continue
            items.append(_item(record, mine))
        run = ds.header.get("run", {})
        return {
            "reviewer": self.reviewer,
            "assign": self.assign,
            "criteria": run.get("criteria", {}) if isinstance(run, dict) else {},
            "reasons": REASONS,
            "items": items,
        }


def _item(record: PairRecord, mine: ReviewRecord | None) -> dict[str, Any]:
    def member(m: Member | None) -> dict[str, Any] | None:
        return None if m is None else to_json(m)

    source = record.source.image if record.source is not None else None
    return {
        "id": record.id,
        "judge": record.status,
        "judge_reasons": list(record.reasons or ()),
        "category": record.category,
        "direction": record.direction,
        "instruction": record.instruction,
        "edited": record.edited_member,
        "source": source if is_image_path(source) else None,
        "a": member(record.a),
        "b": member(record.b),
        "similarity": to_json(record.similarity) if record.similarity else {},
        "mine": None
        if mine is None
        else {"decision": mine.decision, "reason": mine.reason, "note": mine.note},
    }
