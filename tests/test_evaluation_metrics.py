"""Evaluation metrics on hand-made cases whose values are worked out by hand, the evaluation
of a model's scores over a set with pairs and uncovered categories, and the bootstrap
intervals' coverage on simulated data with a known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safetypairs.evaluation import metrics
from safetypairs.evaluation.datasets_in import EvalPair, EvalSet, Item
from safetypairs.evaluation.evaluate import Settings, evaluate
from safetypairs.evaluation.scorers import Scores

# 4 unsafe, 6 safe; the model: TP 3, FN 1, FP 2, TN 4.
TRUTH = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
PRED = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0], bool)


def test_classification_metrics_by_hand() -> None:
    m = metrics.classification(TRUTH, PRED)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))  # = 2PR/(P+R) = 2/3
    assert metrics.confusion_matrix(TRUTH, PRED) == [[4, 2], [1, 3]]


def test_undefined_metrics_are_nan_not_zero() -> None:
    m = metrics.classification(np.array([0, 0, 1], bool), np.zeros(3, bool))
    assert math.isnan(m["precision"])  # nothing flagged
    assert m["recall"] == 0.0 and m["accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(metrics.classification(np.zeros(3, bool), np.zeros(3, bool))["recall"])


def test_metrics_vectorise_over_resamples() -> None:
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(TRUTH), size=(50, len(TRUTH)))
    together = metrics.classification(TRUTH[idx], PRED[idx])
    for b in range(50):
        one = metrics.classification(TRUTH[idx[b]], PRED[idx[b]])
        for name, value in one.items():
            assert np.isclose(together[name][b], value, equal_nan=True)


def test_pair_accuracy_and_flip_rate_by_hand() -> None:
    # Pairs 1 and 4 have both members right; 2 and 3 one member wrong.
    assert metrics.pair_accuracy([1, 1, 0, 1], [1, 0, 1, 1]) == pytest.approx(0.5)
    # The unsafe member's score rises in pairs 1 and 4; falls in 2; ties in 3 (no flip).
    assert metrics.flip_rate([0.9, 0.4, 0.5, 0.7], [0.1, 0.6, 0.5, 0.2]) == pytest.approx(0.5)


def test_roc_and_pr_by_hand() -> None:
    truth = np.array([1, 1, 0, 0], bool)
    score = np.array([0.9, 0.4, 0.6, 0.1])
    # Of the 4 (positive, negative) pairs, 3 are ordered right.
    fpr, tpr, auc = metrics.roc_curve(truth, score)
    assert auc == pytest.approx(0.75)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    # Precision 1 at recall 1/2, 2/3 at recall 1.
    assert metrics.average_precision(truth, score) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert metrics.roc_auc(np.array([1, 0], bool), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert math.isnan(metrics.roc_auc(np.ones(3, bool), np.arange(3.0)))


def test_category_confusion_by_hand() -> None:
    classes = ["safe", "O1", "O6"]
    truth = ["safe", "O6", "O6", "O1", "safe"]
    pred = ["safe", "O6", "O1", "O1", "O6"]
    assert metrics.category_confusion(truth, pred, classes) == [[1, 0, 1], [0, 1, 0], [0, 1, 1]]


def o6_scores(
    model: str, p: np.ndarray, flagged: np.ndarray, not_covered: tuple[str, ...]
) -> Scores:
    """A guard's scores that cover O6 only: P(O6) per image and its decisions."""
    return Scores(
        model=model,
        kind="onnx-guard",
        untrained=False,
        notice="",
        categories=("O6",),
        not_covered=not_covered,
        probabilities=p[:, None],
        flagged=flagged[:, None],
        unsafe_probability=p,
        unsafe=flagged,
        predicted=["O6" if f else "" for f in flagged],
        thresholds={"O6": 0.5},
    )


def _item(i: int, labels: set[str]) -> Item:
    return Item(f"img{i}", frozenset(labels), f"row {i}", f"{i:064x}")


def test_evaluate_counts_pairs_and_leaves_uncovered_categories_out() -> None:
    """A guard covering O6 only, on two pairs and three single images, one labelled O1."""
    data = EvalSet(
        items=[
            _item(0, set()),  # pair p1: safe / O6, both right, score rises
            _item(1, {"O6"}),
            _item(2, set()),  # pair p2: safe / O6, the O6 one missed, score still rises
            _item(3, {"O6"}),
            _item(4, {"O6"}),  # right
            _item(5, set()),  # false positive
            _item(6, {"O1"}),  # not covered: out of the overall metrics
        ],
        pairs=[EvalPair("p1", 0, 1), EvalPair("p2", 2, 3)],
        sources=["hand-made"],
    )
    p = np.array([0.1, 0.9, 0.2, 0.4, 0.8, 0.7, 0.3])
    flagged = p >= 0.5
    r = evaluate(data, o6_scores("hand:1", p, flagged, ("O1",)), Settings(resamples=200))
    o6 = r["categories"]["O6"]
    # O6 over all 7 images: TP 2 (1, 4), FN 1 (3), FP 1 (5), TN 3 (0, 2, 6).
    assert o6["images"]["confusion"]["matrix"] == [[3, 1], [1, 2]]
    assert o6["images"]["precision"]["value"] == pytest.approx(2 / 3)
    assert o6["pairs"]["pairs"] == 2
    assert o6["pairs"]["pair_accuracy"]["value"] == pytest.approx(0.5)
    assert o6["pairs"]["flip_rate"]["value"] == pytest.approx(1.0)
    assert r["categories"]["O1"] == {"status": "not_covered"}
    # Overall: image 6 (O1, which the guard cannot see) is left out, not counted as wrong.
    assert r["overall"]["images"]["images"] == 6
    assert r["overall"]["images"]["confusion"]["matrix"] == [[2, 1], [1, 2]]
    assert any("O1" in note and "left out" in note for note in r["notes"])
    lo, hi = o6["images"]["accuracy"]["ci"]
    assert lo <= o6["images"]["accuracy"]["value"] <= hi
    assert r["category_confusion"]["classes"] == ["safe", "O6"]
    assert r["category_confusion"]["matrix"] == [[2, 1], [1, 2]]  # image 6 (O1) not in it


def _coverage(simulate, statistic, truth: float, trials: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for t in range(trials):
        sample = simulate(rng)
        lo, hi = metrics.bootstrap_ci(
            lambda r, s=sample: statistic(s, r), len(sample[0]), resamples=400, seed=t
        )
        hits += lo <= truth <= hi
    return hits / trials


def test_bootstrap_interval_covers_true_accuracy_near_nominal() -> None:
    """300 simulated test sets of 120 images, each image right with probability 0.8: the 95%
    interval holds 0.8 in about 95% of them."""
    n, p_right = 120, 0.8

    def simulate(rng):
        right = rng.random(n) < p_right
        truth = rng.random(n) < 0.4
        return truth, np.where(right, truth, ~truth)

    coverage = _coverage(
        simulate, lambda s, r: metrics.classification(s[0][r], s[1][r])["accuracy"], 0.8, 300, 0
    )
    assert 0.9 <= coverage <= 0.985, coverage


def test_bootstrap_over_pairs_covers_true_pair_accuracy() -> None:
    """Members of a pair are not independent (an easy pair is right on both sides): pairs are
    resampled as units. True pair accuracy: 0.6 + 0.4 x 0.5 x 0.5 = 0.7."""
    m = 100

    def simulate(rng):
        easy = rng.random(m) < 0.6
        a = easy | (rng.random(m) < 0.5)
        b = easy | (rng.random(m) < 0.5)
        return a, b

    coverage = _coverage(
        simulate, lambda s, r: metrics.pair_accuracy(s[0][r], s[1][r]), 0.7, 300, 1
    )
    assert 0.9 <= coverage <= 0.985, coverage


def test_bootstrap_is_seeded_and_handles_empty() -> None:
    def stat(r):
        return metrics.classification(TRUTH[r], PRED[r])["f1"]

    assert metrics.bootstrap_ci(stat, 10, seed=3) == metrics.bootstrap_ci(stat, 10, seed=3)
    assert all(math.isnan(x) for x in metrics.bootstrap_ci(stat, 0))


def test_wilson_interval_does_not_collapse_at_the_edges() -> None:
    """10 right of 10: the percentile bootstrap said [1, 1]; Wilson says [0.722, 1]."""
    lo, hi = metrics.wilson_ci(10, 10, 0.95)
    assert lo == pytest.approx(0.7225, abs=1e-4) and hi == 1.0
    lo, hi = metrics.wilson_ci(0, 10, 0.95)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = metrics.wilson_ci(7, 10, 0.95)  # the textbook case: [0.3968, 0.8922]
    assert (lo, hi) == (pytest.approx(0.3968, abs=1e-4), pytest.approx(0.8922, abs=1e-4))
    assert all(math.isnan(x) for x in metrics.wilson_ci(0, 0))


def test_bca_interval_moves_towards_the_skewed_side() -> None:
    """Near the edge a statistic's bootstrap distribution is skewed: BCa's interval holds the
    point and is lopsided towards the open side, where the percentile one is not adjusted."""
    right = np.array([True] * 19 + [False])

    def accuracy(r: np.ndarray) -> np.ndarray:
        return right[r].mean(-1)

    lo, hi = metrics.bootstrap_ci(accuracy, 20, resamples=2000, seed=0)
    assert lo < 0.95 <= hi <= 1.0
    assert 0.95 - lo > hi - 0.95  # more room below 0.95 than above it
    assert metrics.bootstrap_ci(lambda r: np.ones(len(r)), 5) == (1.0, 1.0)  # no spread


def test_perfect_scores_get_intervals_that_are_not_a_point() -> None:
    n = 12
    truth = np.arange(n) % 2 == 0
    data = EvalSet(
        items=[_item(i, {"O6"} if truth[i] else set()) for i in range(n)],
        pairs=[EvalPair(f"p{k}", 2 * k, 2 * k + 1) for k in range(n // 2)],
        sources=["perfect"],
    )
    p = np.where(truth, 0.9, 0.1)
    r = evaluate(data, o6_scores("perfect:1", p, truth, ()), Settings(resamples=200))
    o6 = r["categories"]["O6"]
    for group, name in (
        ("images", "accuracy"),
        ("images", "precision"),
        ("images", "recall"),
        ("images", "f1"),
        ("pairs", "pair_accuracy"),
        ("pairs", "flip_rate"),
    ):
        value, (lo, hi) = o6[group][name]["value"], o6[group][name]["ci"]
        assert value == 1.0 and lo < 0.9 and hi == 1.0, (name, lo, hi)
    assert "Wilson" in r["settings"]["intervals"] and "BCa" in r["settings"]["intervals"]
