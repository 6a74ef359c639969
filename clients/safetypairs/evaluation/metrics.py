"""Evaluation metrics, pure numpy.

Counting metrics work along the last axis, so one call computes them for one dataset
(shape (n,)) or for every bootstrap resample at once (shape (B, n)). Undefined values (a
precision with nothing predicted positive, a recall with no positives) are NaN.

Definitions (truth, pred: booleans, True = unsafe):
  accuracy   (TP + TN) / n              precision  TP / (TP + FP)
  recall     TP / (TP + FN)             F1         2 TP / (2 TP + FP + FN)
  pair accuracy    share of pairs whose two images are both classified right
  flip rate        share of pairs where the unsafe member scores strictly above the safe one
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def counts(truth: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """TP, FP, FN, TN along the last axis."""
    truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
    return {
        "tp": (truth & pred).sum(-1),
        "fp": (~truth & pred).sum(-1),
        "fn": (truth & ~pred).sum(-1),
        "tn": (~truth & ~pred).sum(-1),
    }


def classification(truth: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall and F1 along the last axis."""
    c = counts(truth, pred)
    n = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    return {
        "accuracy": _ratio(c["tp"] + c["tn"], n),
        "precision": _ratio(c["tp"], c["tp"] + c["fp"]),
        "recall": _ratio(c["tp"], c["tp"] + c["fn"]),
        "f1": _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"]),
    }


def confusion_matrix(truth: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    """[[TN, FP], [FN, TP]]: rows are the truth (safe, unsafe), columns the prediction."""
    c = counts(truth, pred)
    return [[int(c["tn"]), int(c["fp"])], [int(c["fn"]), int(c["tp"])]]


def category_confusion(truth: list[str], pred: list[str], classes: list[str]) -> list[list[int]]:
    """Counts of (true class, predicted class) over single-class images, rows = truth."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(truth, pred, strict=True):
        matrix[index[t], index[p]] += 1
    return matrix.tolist()


def pair_accuracy(right_a: np.ndarray, right_b: np.ndarray) -> np.ndarray:
    """Share of pairs with both members right, along the last axis."""
    both = np.asarray(right_a, bool) & np.asarray(right_b, bool)
    return _ratio(both.sum(-1), np.full(both.shape[:-1], both.shape[-1]))


def flip_rate(score_unsafe: np.ndarray, score_safe: np.ndarray) -> np.ndarray:
    """Share of pairs whose unsafe member scores strictly higher (a tie is no flip)."""
    moved = np.asarray(score_unsafe) > np.asarray(score_safe)
    return _ratio(moved.sum(-1), np.full(moved.shape[:-1], moved.shape[-1]))


def roc_curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False and true positive rates at every distinct threshold, from (0, 0), and the area
    under the curve (trapezoids: ties count one half). NaN area without both classes."""
    truth, score = np.asarray(truth, bool), np.asarray(score, float)
    pos, neg = int(truth.sum()), int((~truth).sum())
    if pos == 0 or neg == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    tp, fp = _cumulative(truth, score)
    fpr, tpr = np.concatenate([[0.0], fp / neg]), np.concatenate([[0.0], tp / pos])
    return fpr, tpr, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def pr_curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Recall and precision at every distinct threshold, and the average precision
    (sum over thresholds of precision x recall gained). NaN without positives."""
    truth, score = np.asarray(truth, bool), np.asarray(score, float)
    pos = int(truth.sum())
    if pos == 0:
        return np.array([0.0, 1.0]), np.array([1.0, 0.0]), float("nan")
    tp, fp = _cumulative(truth, score)
    recall, precision = tp / pos, tp / (tp + fp)
    ap = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
    return np.concatenate([[0.0], recall]), np.concatenate([[1.0], precision]), ap


def _cumulative(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives when flagging every score >= each distinct score, highest
    first."""
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], truth[order]
    last_of_each = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    return np.cumsum(t)[last_of_each].astype(float), np.cumsum(~t)[last_of_each].astype(float)


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    return roc_curve(truth, score)[2]


def average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    return pr_curve(truth, score)[2]


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion: unlike a bootstrap it does not collapse at 0 or
    1 (10 right of 10 gives [0.72, 1.0] at 95%, not [1, 1]). (NaN, NaN) when n == 0."""
    if n == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At 0 or n successes the bound is exactly 0 or 1 (rounding would leave 1e-17 off it).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


# Jackknife groups for BCa's acceleration: every unit alone up to this many units, then this
# many groups (the delete-d jackknife), so large sets cost a bounded number of evaluations.
JACKKNIFE_GROUPS = 500


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """BCa (bias-corrected and accelerated) bootstrap interval. `statistic` maps a (B, n)
    array of unit indices (images, or pairs for pair metrics: whatever was sampled
    independently) to B values; resamples where the statistic is undefined (NaN) are left
    out. The bias correction and the jackknife acceleration move the percentiles where the
    statistic's distribution is skewed, as it is near 0 or 1. (NaN, NaN) when n == 0 or no
    resample is defined; the one value when every resample gives it."""
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.asarray(statistic(rng.integers(0, n, size=(resamples, n))), float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.min() == values.max():
        return float(values[0]), float(values[0])
    point = float(np.asarray(statistic(np.arange(n)[None, :]), float)[0])
    tail = (1.0 - level) / 2
    if math.isnan(point):  # no bias to correct against: the plain percentile interval
        low, high = np.percentile(values, [100 * tail, 100 * (1 - tail)])
        return float(low), float(high)
    below = (np.mean(values < point) + 0.5 * np.mean(values == point)).clip(
        0.5 / values.size, 1 - 0.5 / values.size
    )
    normal = NormalDist()
    z0 = normal.inv_cdf(float(below))
    a = _acceleration(statistic, n, rng)
    quantiles = []
    for z in (normal.inv_cdf(tail), normal.inv_cdf(1 - tail)):
        shifted = z0 + z
        quantiles.append(normal.cdf(z0 + shifted / (1 - a * shifted)))
    low, high = np.quantile(values, quantiles)
    return float(low), float(high)


def _acceleration(
    statistic: Callable[[np.ndarray], np.ndarray], n: int, rng: np.random.Generator
) -> float:
    """BCa's acceleration from the (grouped) jackknife: the skewness of the leave-out values."""
    groups = np.array_split(rng.permutation(n), min(n, JACKKNIFE_GROUPS))
    if len(groups) < 2:
        return 0.0
    everyone = np.arange(n)
    keep = [np.setdiff1d(everyone, g, assume_unique=True) for g in groups]
    # One (G, width) array of indices: groups differ by one unit at most, so at most one more
    # unit is left out of some rows.
    width = min(len(k) for k in keep)
    jack = np.asarray(statistic(np.stack([k[:width] for k in keep])), float)
    jack = jack[~np.isnan(jack)]
    d = jack.mean() - jack if jack.size else jack
    spread = float(np.sum(d**2))
    return float(np.sum(d**3) / (6 * spread**1.5)) if spread > 0 else 0.0


def per_row(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable:
    """A statistic of (truth, score) that is not vectorised (AUC, AP) applied row by row of
    (B, n) resamples."""

    def apply(truth: np.ndarray, score: np.ndarray) -> np.ndarray:
        return np.array([fn(t, s) for t, s in zip(truth, score, strict=True)])

    return apply
