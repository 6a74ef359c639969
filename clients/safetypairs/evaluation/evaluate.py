"""Metrics of one model's scores on one EvalSet, with bootstrap confidence intervals.

Per covered category c: every image counts, truth = c in its labels, decision = the model's
flag for c, score = its P(c); pair metrics over the pairs whose members differ in c.
Overall ("any category"): truth = any covered label, decision = the verdict; images carrying
a label the model does not cover are left out (they are unsafe for a reason it cannot see),
and pair metrics run over the pairs with one safe and one unsafe member.
Intervals: Wilson score for proportions (accuracy, precision, recall; pair accuracy and flip
rate over pairs as units), BCa bootstrap over images for F1, ROC AUC and average precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from safetypairs.evaluation import metrics
from safetypairs.evaluation.datasets_in import EvalSet
from safetypairs.evaluation.scorers import Scores

SAFE = "safe"
INTERVALS = (
    "Wilson score intervals for proportions (accuracy, precision, recall over images; pair "
    "accuracy, flip rate over pairs); BCa bootstrap intervals for F1 (the Wilson interval of "
    "TP out of TP + (FP + FN) / 2 where every resample agrees), ROC AUC and average precision"
)


@dataclass(frozen=True)
class Settings:
    resamples: int = 1000
    level: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class Task:
    """One binary question over the set: its truth, decisions and scores per image."""

    truth: np.ndarray
    pred: np.ndarray
    score: np.ndarray
    images: np.ndarray  # indices of the images that count
    pairs: np.ndarray  # (m, 2) image indices: (unsafe member, safe member)


def rounded(x: float) -> float | None:
    """JSON-ready: 6 decimals, None for NaN (undefined)."""
    return None if x is None or np.isnan(x) else round(float(x), 6)


def with_ci(point: float, ci: tuple[float, float]) -> dict[str, Any]:
    return {"value": rounded(point), "ci": [rounded(ci[0]), rounded(ci[1])]}


def image_metrics(task: Task, settings: Settings) -> dict[str, Any]:
    idx = task.images
    t, p, s = task.truth[idx], task.pred[idx], task.score[idx]
    n = len(idx)
    boot = {"resamples": settings.resamples, "level": settings.level, "seed": settings.seed}
    point = metrics.classification(t, p)
    out: dict[str, Any] = {"images": n, "positives": int(t.sum())}
    c = {k: int(v) for k, v in metrics.counts(t, p).items()}
    # Proportions get the Wilson interval (it does not collapse at 0 or 1); F1 is no
    # proportion of units, so it gets the BCa bootstrap.
    proportions = {
        "accuracy": (c["tp"] + c["tn"], n),
        "precision": (c["tp"], c["tp"] + c["fp"]),
        "recall": (c["tp"], c["tp"] + c["fn"]),
    }
    for name, value in point.items():
        if name in proportions:
            ci = metrics.wilson_ci(*proportions[name], settings.level)
        else:
            ci = metrics.bootstrap_ci(
                lambda r, name=name: metrics.classification(t[r], p[r])[name], n, **boot
            )
            if ci[0] == ci[1]:  # every resample agreed (a perfect F1, say): no interval from it
                ci = _f1_fallback(c, settings.level)
        out[name] = with_ci(float(value), ci)
    for name, fn in (
        ("roc_auc", metrics.roc_auc),
        ("average_precision", metrics.average_precision),
    ):
        # Fewer resamples: these are not vectorised, and their intervals matter less.
        ci = metrics.bootstrap_ci(
            lambda r, fn=fn: metrics.per_row(fn)(t[r], s[r]),
            n,
            **{**boot, "resamples": min(settings.resamples, 300)},
        )
        out[name] = with_ci(fn(t, s), ci)
    out["confusion"] = {
        "rows_truth_cols_prediction": ["safe", "unsafe"],
        "matrix": metrics.confusion_matrix(t, p),
    }
    return out


def _f1_fallback(c: dict[str, int], level: float) -> tuple[float, float]:
    """F1 = TP / (TP + (FP + FN) / 2): its Wilson interval as a proportion of that many
    trials, for when the bootstrap has no spread to give one (its n rounded down)."""
    trials = c["tp"] + (c["fp"] + c["fn"]) // 2
    return metrics.wilson_ci(min(c["tp"], trials), trials, level)


def pair_metrics(task: Task, settings: Settings) -> dict[str, Any]:
    u, s = task.pairs[:, 0], task.pairs[:, 1]
    right_u = task.pred[u] == task.truth[u]
    right_s = task.pred[s] == task.truth[s]
    score_u, score_s = task.score[u], task.score[s]
    m = len(task.pairs)
    both_right, flipped = int((right_u & right_s).sum()), int((score_u > score_s).sum())
    # Both are proportions of pairs (independent units): Wilson intervals.
    return {
        "pairs": m,
        "pair_accuracy": with_ci(
            both_right / m if m else float("nan"),
            metrics.wilson_ci(both_right, m, settings.level),
        ),
        "flip_rate": with_ci(
            flipped / m if m else float("nan"), metrics.wilson_ci(flipped, m, settings.level)
        ),
    }


def _oriented(data: EvalSet, truth: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(unsafe member, safe member) of each pair whose members differ in `truth`."""
    rows = [
        (p.a, p.b) if truth[p.a] else (p.b, p.a)
        for p in data.pairs
        if keep[p.a] and keep[p.b] and truth[p.a] != truth[p.b]
    ]
    return np.array(rows, dtype=int).reshape(-1, 2)


def tasks(data: EvalSet, scores: Scores) -> dict[str, Task]:
    """The overall task ("any") and one per covered category."""
    n = len(data.items)
    covered = set(scores.categories)
    every = np.ones(n, dtype=bool)
    out = {}
    keep_any = np.array([item.labels <= covered for item in data.items])
    truth_any = np.array([bool(item.labels & covered) for item in data.items])
    out["any"] = Task(
        truth_any,
        scores.unsafe,
        scores.unsafe_probability,
        np.flatnonzero(keep_any),
        _oriented(data, truth_any, keep_any),
    )
    for j, code in enumerate(scores.categories):
        truth = np.array([code in item.labels for item in data.items])
        out[code] = Task(
            truth,
            scores.flagged[:, j],
            scores.probabilities[:, j],
            np.arange(n),
            _oriented(data, truth, every),
        )
    return out


def _macro(per_category: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean over the covered categories that have positive images (others have no recall)."""
    with_positives = [c for c, r in per_category.items() if r["images"]["positives"] > 0]
    out: dict[str, Any] = {"categories": with_positives}
    for name in ("precision", "recall", "f1", "accuracy"):
        values = [per_category[c]["images"][name]["value"] for c in with_positives]
        values = [v for v in values if v is not None]
        out[name] = rounded(float(np.mean(values))) if values else None
    return out


def category_confusion(data: EvalSet, scores: Scores) -> dict[str, Any]:
    """True class vs the verdict's category, over images with at most one label, all covered."""
    classes = [SAFE, *scores.categories]
    rows = [
        (next(iter(item.labels), SAFE), scores.predicted[i] or SAFE)
        for i, item in enumerate(data.items)
        if len(item.labels) <= 1 and item.labels <= set(scores.categories)
    ]
    truth = [t for t, _ in rows]
    pred = [p if p in classes else SAFE for _, p in rows]
    return {
        "classes": classes,
        "rows_truth_cols_prediction": True,
        "images": len(rows),
        "matrix": metrics.category_confusion(truth, pred, classes),
    }


def untrained_reasons(data: EvalSet, scores: Scores) -> list[str]:
    """Why these figures measure nothing about safety: the model under evaluation is
    untrained (random weights, or trained on what untrained models made), or the labels it
    is scored against came from an untrained judge. Empty when neither."""
    out = []
    if scores.untrained:
        why = scores.notice.removeprefix("UNTRAINED").lstrip(": ") or "random weights"
        out.append(f"UNTRAINED model {scores.model}: {why}")
    made_by = data.untrained_sources()
    if made_by:
        out.append("UNTRAINED labels: pairs made by untrained models: " + ", ".join(made_by))
    return out


def notes(data: EvalSet, scores: Scores) -> list[str]:
    out = [
        f"{reason}: these figures measure nothing about safety; they exercise the evaluation path"
        for reason in untrained_reasons(data, scores)
    ]
    if scores.not_covered:
        out.append(
            f"not covered by this model, left out of every metric (not counted as wrong): "
            f"{', '.join(scores.not_covered)}"
        )
    labelled = {c for item in data.items for c in item.labels}
    uncovered = sorted(labelled - set(scores.categories))
    if uncovered:
        out.append(
            f"images labelled {', '.join(uncovered)} (not covered) are left out of the overall "
            "('any') metrics"
        )
    if not data.pairs:
        out.append("no pairs in the data: pair accuracy and flip rate are not computed")
    return out


def evaluate(data: EvalSet, scores: Scores, settings: Settings | None = None) -> dict[str, Any]:
    """Every metric, as a JSON-ready dict (the report's `results`)."""
    settings = settings or Settings()
    per_task = {}
    for name, task in tasks(data, scores).items():
        result: dict[str, Any] = {"images": image_metrics(task, settings)}
        if data.pairs:
            result["pairs"] = pair_metrics(task, settings)
        per_task[name] = result
    overall = per_task.pop("any")
    categories: dict[str, Any] = dict(per_task)
    categories |= {c: {"status": "not_covered"} for c in scores.not_covered}
    untrained = untrained_reasons(data, scores)
    return {
        "untrained": bool(untrained),
        "untrained_reasons": untrained,
        "model": scores.describe(),
        "dataset": {
            "sources": data.sources,
            "images": len(data.items),
            "pairs": len(data.pairs),
            "labels": {
                c: sum(c in item.labels for item in data.items)
                for c in sorted({c for item in data.items for c in item.labels})
            },
            "safe_images": sum(not item.labels for item in data.items),
            "made_by_untrained": data.untrained_sources(),
        },
        "settings": {
            "bootstrap_resamples": settings.resamples,
            "confidence_level": settings.level,
            "seed": settings.seed,
            "intervals": INTERVALS,
        },
        "notes": notes(data, scores),
        "overall": overall,
        "macro": _macro(per_task),
        "categories": categories,
        "category_confusion": category_confusion(data, scores),
    }
