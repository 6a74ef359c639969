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

from collections.abc import Callable

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


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval. `statistic` maps a (B, n) array of unit indices (images,
    or pairs for pair metrics: whatever was sampled independently) to B values; resamples
    where the statistic is undefined (NaN) are left out. (NaN, NaN) when n == 0 or no
    resample is defined."""
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.asarray(statistic(rng.integers(0, n, size=(resamples, n))), float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def per_row(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable:
    """A statistic of (truth, score) that is not vectorised (AUC, AP) applied row by row of
    (B, n) resamples."""

    def apply(truth: np.ndarray, score: np.ndarray) -> np.ndarray:
        return np.array([fn(t, s) for t, s in zip(truth, score, strict=True)])

    return apply
