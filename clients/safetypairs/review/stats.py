"""Review figures: acceptance per category, reason and reviewer, agreement between reviewers,
and the judge against people. `safetypairs review-stats DATASET` prints them and writes
DATASET/review-stats.json and DATASET/review-stats.png.

Every figure counts standing decisions (a reviewer's latest after undo, see
safetypairs.contract.review_record). Agreement is on accept/reject: Cohen's kappa when two
people reviewed, Fleiss' kappa when more did (over pairs with at least two decisions, in the
form that allows a different number of raters per pair). Its 95% interval is a percentile
bootstrap over pairs (2000 resamples, fixed seed); a resample where kappa is undefined (every
decision the same) is left out. A pair's human verdict is "accepted" or "rejected" when every
reviewer on it agrees and "disputed" otherwise; the judge-vs-human table counts verdicts
against the judge's status per category, disputed pairs apart.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from safetypairs.contract.pair_record import ACCEPTED
from safetypairs.contract.review_record import (
    ACCEPT,
    DISPUTED,
    HUMAN_ACCEPTED,
    HUMAN_REJECTED,
    REJECT,
    ReviewRecord,
    pair_state,
    read_reviews,
    standing,
)
from safetypairs.pairs.dataset import PairDataset
from safetypairs.review.queue import reviewable

JSON_NAME, PLOT_NAME = "review-stats.json", "review-stats.png"
RESAMPLES, SEED, LEVEL = 2000, 0, 0.95
UNCATEGORIZED = "(none)"

Ratings = dict[str, str]  # reviewer -> "accept" | "reject", for one pair


def cohen_kappa(items: Sequence[Ratings], first: str, second: str) -> float | None:
    """Cohen's kappa of two reviewers over the items both decided; None when undefined."""
    both = [(r[first], r[second]) for r in items if first in r and second in r]
    if not both:
        return None
    observed = sum(x == y for x, y in both) / len(both)
    expected = sum(
        (sum(x == k for x, _ in both) / len(both)) * (sum(y == k for _, y in both) / len(both))
        for k in (ACCEPT, REJECT)
    )
    return None if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(items: Sequence[Ratings]) -> float | None:
    """Fleiss' kappa over items with two or more ratings; None when undefined."""
    rated = [list(r.values()) for r in items if len(r) >= 2]
    if not rated:
        return None
    agreement = []
    totals: Counter[str] = Counter()
    for values in rated:
        counts = Counter(values)
        n = len(values)
        agreement.append((sum(c * c for c in counts.values()) - n) / (n * (n - 1)))
        totals.update(counts)
    whole = sum(totals.values())
    expected = sum((c / whole) ** 2 for c in totals.values())
    if expected == 1:
        return None
    return (sum(agreement) / len(agreement) - expected) / (1 - expected)


def _interval(
    items: Sequence[Ratings], kappa: Callable[[Sequence[Ratings]], float | None]
) -> list[float] | None:
    rng = random.Random(SEED)
    values = []
    for _ in range(RESAMPLES):
        value = kappa([items[rng.randrange(len(items))] for _ in items])
        if value is not None:
            values.append(value)
    if not values:
        return None
    values.sort()
    tail = (1 - LEVEL) / 2
    return [values[int(tail * (len(values) - 1))], values[int((1 - tail) * (len(values) - 1))]]


def agreement(items: Sequence[Ratings], reviewers: Sequence[str]) -> dict[str, Any]:
    if len(reviewers) < 2:
        return {"method": None, "note": "agreement needs two reviewers or more"}
    if len(reviewers) == 2:
        first, second = reviewers
        shared = [r for r in items if first in r and second in r]

        def kappa(sample: Sequence[Ratings]) -> float | None:
            return cohen_kappa(sample, first, second)

        method = "cohen"
    else:
        shared = [r for r in items if len(r) >= 2]
        kappa, method = fleiss_kappa, "fleiss"
    return {
        "method": method,
        "reviewers": list(reviewers),
        "pairs": len(shared),
        "kappa": kappa(shared),
        "interval": _interval(shared, kappa) if shared else None,
        "level": LEVEL,
        "interval_method": f"percentile bootstrap over pairs, {RESAMPLES} resamples",
    }


def _rate(accepted: int, total: int) -> float | None:
    return accepted / total if total else None


def review_stats(dataset: str | Path) -> dict[str, Any]:
    root = Path(dataset)
    records = {str(r.id): r for r in reviewable(PairDataset.read(root))}
    decided: dict[str, dict[str, ReviewRecord]] = {
        pair: on_pair for pair, on_pair in standing(read_reviews(root)).items() if pair in records
    }
    reviewers = sorted({name for on_pair in decided.values() for name in on_pair})
    per_reviewer = {name: Counter() for name in reviewers}
    per_category: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {}
    confusion: dict[str, Counter[str]] = {}
    for pair, on_pair in decided.items():
        category = records[pair].category or UNCATEGORIZED
        counts = per_category.setdefault(category, Counter())
        for r in on_pair.values():
            per_reviewer[r.reviewer][r.decision] += 1
            counts[r.decision] += 1
            if r.decision == REJECT:
                reasons.setdefault(category, Counter())[r.reason] += 1
        judge = "judge_accepted" if records[pair].status == ACCEPTED else "judge_rejected"
        state = pair_state(on_pair)
        human = {HUMAN_ACCEPTED: "human_accepted", HUMAN_REJECTED: "human_rejected"}.get(
            state, DISPUTED
        )
        confusion.setdefault(category, Counter())[f"{judge}_{human}"] += 1

    def acceptance(c: Counter[str]) -> dict[str, Any]:
        total = c[ACCEPT] + c[REJECT]
        return {
            "decisions": total,
            "accepted": c[ACCEPT],
            "rejected": c[REJECT],
            "acceptance": _rate(c[ACCEPT], total),
        }

    def judge_table(c: Counter[str]) -> dict[str, Any]:
        cells = [
            f"judge_{j}_human_{h}"
            for j in ("accepted", "rejected")
            for h in ("accepted", "rejected")
        ]
        table: dict[str, Any] = {cell: c[cell] for cell in cells}
        table["disputed"] = sum(v for k, v in c.items() if k.endswith(DISPUTED))
        judged = table["judge_accepted_human_accepted"] + table["judge_accepted_human_rejected"]
        # How often people rejected what the automatic checks accepted.
        table["judge_accepted_human_rejected_rate"] = _rate(
            table["judge_accepted_human_rejected"], judged
        )
        return table

    ratings = [{r.reviewer: r.decision for r in on_pair.values()} for on_pair in decided.values()]
    return {
        "dataset": str(root),
        "pairs": len(records),
        "reviewed_pairs": len(decided),
        "states": dict(Counter(pair_state(on_pair) for on_pair in decided.values())),
        "categories": {
            cat: {**acceptance(c), "reasons": dict(reasons.get(cat, {}))}
            for cat, c in sorted(per_category.items())
        },
        "reasons": dict(sum(reasons.values(), Counter())),
        "reviewers": {name: acceptance(c) for name, c in per_reviewer.items()},
        "agreement": agreement(ratings, reviewers),
        "judge_vs_human": {cat: judge_table(c) for cat, c in sorted(confusion.items())},
    }


def write_stats(dataset: str | Path) -> tuple[dict[str, Any], Path, Path]:
    """The figures, written beside the dataset's manifests as JSON and a PNG."""
    from safetypairs.review.plot import plot_stats

    root = Path(dataset)
    stats = review_stats(root)
    json_path = root / JSON_NAME
    json_path.write_text(json.dumps(stats, indent=2) + "\n")
    return stats, json_path, plot_stats(stats, root / PLOT_NAME)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def format_stats(stats: dict[str, Any]) -> str:
    lines = [f"{stats['reviewed_pairs']} of {stats['pairs']} pairs reviewed: {stats['states']}"]
    for cat, c in stats["categories"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in c["reasons"].items()) or "no rejections"
        lines.append(
            f"  {cat}: {c['accepted']}/{c['decisions']} accepted ({_pct(c['acceptance'])}); "
            f"{reasons}"
        )
    for name, c in stats["reviewers"].items():
        lines.append(f"  reviewer {name}: {c['accepted']}/{c['decisions']} accepted")
    a = stats["agreement"]
    if a["method"] is None:
        lines.append(f"agreement: {a['note']}")
    else:
        kappa = "undefined" if a["kappa"] is None else f"{a['kappa']:.3f}"
        ci = a["interval"]
        shown = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(f"agreement: {a['method']} kappa {kappa}{shown} over {a['pairs']} pairs")
    for cat, t in stats["judge_vs_human"].items():
        lines.append(
            f"  judge vs people, {cat}: judge accepted & people rejected "
            f"{t['judge_accepted_human_rejected']} of "
            f"{t['judge_accepted_human_accepted'] + t['judge_accepted_human_rejected']} "
            f"({_pct(t['judge_accepted_human_rejected_rate'])}); disputed {t['disputed']}"
        )
    return "\n".join(lines)
