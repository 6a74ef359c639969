"""The figures at the top of a pair dataset's report: acceptance per category, rejections per
reason, time per stage, and the models flagged untrained."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from safetypairs.contract.pair_record import ACCEPTED, FailedUnit, PairRecord

UNCATEGORIZED = "(none)"


@dataclass
class CategoryStats:
    units: set[str] = field(default_factory=set)
    units_with_pair: set[str] = field(default_factory=set)
    accepted: int = 0
    rejected: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        total = self.accepted + self.rejected
        return self.accepted / total if total else None


@dataclass
class StageTime:
    n: int
    mean: float
    median: float
    total: float


@dataclass
class Summary:
    """The figures at the top of the report (also useful on their own)."""

    accepted: int
    rejected: int
    failed: int
    categories: dict[str, CategoryStats]
    reasons: Counter[str]
    stages: dict[str, StageTime]
    untrained: list[str]


def finite(value: Any) -> float | None:
    """The value as a float when it is a finite number (NaN and infinities are not figures)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def summarize(records: Sequence[PairRecord], failed: Sequence[FailedUnit]) -> Summary:
    """Acceptance per category (candidates and units), rejections per reason, time per stage
    over every candidate's timings, and the models flagged untrained."""
    categories: dict[str, CategoryStats] = {}
    reasons: Counter[str] = Counter()
    timings: dict[str, list[float]] = {}
    untrained: set[str] = set()
    for r in records:
        stats = categories.setdefault(r.category or UNCATEGORIZED, CategoryStats())
        unit = str(r.unit)
        stats.units.add(unit)
        if r.status == ACCEPTED:
            stats.accepted += 1
            stats.units_with_pair.add(unit)
        else:
            stats.rejected += 1
            reasons.update(r.reasons or ())
        for stage, seconds in (r.timings.stages() if r.timings else {}).items():
            if (value := finite(seconds)) is not None:
                timings.setdefault(stage, []).append(value)
        untrained.update(r.models.untrained() if r.models else ())
    stages = {
        stage: StageTime(len(v), statistics.fmean(v), statistics.median(v), math.fsum(v))
        for stage, v in timings.items()
    }
    return Summary(
        accepted=sum(s.accepted for s in categories.values()),
        rejected=sum(s.rejected for s in categories.values()),
        failed=len(failed),
        categories=dict(sorted(categories.items())),
        reasons=reasons,
        stages=stages,
        untrained=sorted(untrained),
    )
