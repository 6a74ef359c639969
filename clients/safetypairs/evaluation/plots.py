"""PNG figures of evaluation results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no display
import matplotlib.pyplot as plt
import numpy as np

from safetypairs.evaluation import metrics

DPI = 110


def titled(text: str, untrained: bool) -> str:
    """A figure's title, with the UNTRAINED line when its figures mean nothing."""
    return f"{text}\nUNTRAINED inputs: figures mean nothing about safety" if untrained else text


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def per_category(results: dict[str, Any], path: Path) -> Path:
    """Bars per category (and overall): precision, recall, F1, pair accuracy, flip rate,
    with their confidence intervals."""
    names = ["any", *[c for c, r in results["categories"].items() if "images" in r]]
    rows = {"any": results["overall"], **results["categories"]}
    measures = [("images", "precision"), ("images", "recall"), ("images", "f1")]
    if results["dataset"]["pairs"]:
        measures += [("pairs", "pair_accuracy"), ("pairs", "flip_rate")]
    width = 0.8 / len(measures)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) + 3), 4.5))
    x = np.arange(len(names))
    for k, (group, name) in enumerate(measures):
        values, lows, highs = [], [], []
        for cat in names:
            m = rows[cat][group][name]
            v = np.nan if m["value"] is None else m["value"]
            lo, hi = (np.nan if c is None else c for c in m["ci"])
            values.append(v)
            lows.append(max(0.0, v - lo) if not np.isnan(lo) else 0.0)
            highs.append(max(0.0, hi - v) if not np.isnan(hi) else 0.0)
        ax.bar(
            x + (k - (len(measures) - 1) / 2) * width,
            values,
            width,
            yerr=[lows, highs],
            capsize=2,
            label=name.replace("_", " "),
        )
    level = round(results["settings"]["confidence_level"] * 100)
    ax.set_xticks(x, ["any category" if n == "any" else n for n in names])
    ax.set_xlabel("category (policy code)")
    ax.set_ylabel(f"score (fraction, 0-1; bars: {level}% CI, Wilson or BCa)")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.set_title(titled(f"{results['model']['name']}: per-category results", _untrained(results)))
    return _save(fig, path)


def _untrained(results: dict[str, Any]) -> bool:
    return bool(results["untrained"])


def curves(
    results: dict[str, Any],
    series: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    roc_path: Path,
    pr_path: Path,
) -> tuple[Path, Path]:
    """ROC and precision-recall curves, one line per (name, truth, score, decision) with both
    classes, each with a marker where the model's own decisions (its thresholds) put it."""
    name = results["model"]["name"]
    untrained = _untrained(results)
    fig_roc, ax_roc = plt.subplots(figsize=(6, 5))
    fig_pr, ax_pr = plt.subplots(figsize=(6, 5))
    ax_roc.plot([0, 1], [0, 1], ls="--", color="grey", label="chance")
    # Not clipped: an operating point on the frame (recall 1, no false positives) stays whole.
    marker = {
        "marker": "o",
        "markersize": 8,
        "markeredgecolor": "black",
        "zorder": 3,
        "clip_on": False,
    }
    for label, truth, score, pred in series:
        if truth.all() or not truth.any():
            continue  # a curve needs both classes
        fpr, tpr, auc = metrics.roc_curve(truth, score)
        (line,) = ax_roc.plot(fpr, tpr, label=f"{label} (AUC {auc:.2f})")
        recall, precision, ap = metrics.pr_curve(truth, score)
        ax_pr.plot(recall, precision, drawstyle="steps-post", label=f"{label} (AP {ap:.2f})")
        at = metrics.classification(truth, pred)
        flagged_safe = float(np.mean(pred[~truth]))
        color = line.get_color()
        ax_roc.plot(flagged_safe, at["recall"], color=color, ls="none", **marker)
        if not np.isnan(at["precision"]):  # nothing flagged: no precision to mark
            ax_pr.plot(at["recall"], at["precision"], color=color, ls="none", **marker)
    for ax in (ax_roc, ax_pr):  # one legend entry for the markers
        ax.plot(
            [],
            [],
            color="white",
            ls="none",
            label="operating point (the model's thresholds)",
            **marker,
        )
    ax_roc.set_xlabel("false positive rate (fraction of safe images flagged)")
    ax_roc.set_ylabel("true positive rate (recall)")
    ax_roc.set_title(titled(f"{name}: ROC", untrained))
    ax_pr.set_xlabel("recall (fraction of unsafe images flagged)")
    ax_pr.set_ylabel("precision (fraction of flags that are right)")
    ax_pr.set_title(titled(f"{name}: precision-recall", untrained))
    for ax in (ax_roc, ax_pr):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right", fontsize="small")
    return _save(fig_roc, roc_path), _save(fig_pr, pr_path)


def confusion(results: dict[str, Any], path: Path) -> Path:
    """True class vs the verdict's category, as a heat map with counts."""
    conf = results["category_confusion"]
    matrix = np.array(conf["matrix"])
    side = max(4.5, 1.5 + 0.7 * len(conf["classes"]))
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        dark = v > matrix.max() / 2  # white on the dark cells, black on the light ones
        ax.text(j, i, str(v), ha="center", va="center", color="white" if dark else "black")
    ticks = range(len(conf["classes"]))
    ax.set_xticks(ticks, conf["classes"])
    ax.set_yticks(ticks, conf["classes"])
    ax.set_xlabel("predicted (verdict category)")
    ax.set_ylabel("true class (label)")
    title = f"{results['model']['name']}: confusion ({conf['images']} images)"
    ax.set_title(titled(title, _untrained(results)))
    return _save(fig, path)


def learning_curves(summary: dict[str, Any], path: Path, metric_label: str, title: str) -> Path:
    """Metric against training images, one line (mean over seeds) per condition, with a band
    from the lowest to the highest seed."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for condition, rows in summary.items():
        n = np.array([r["train_images"] for r in rows])
        mean = np.array([np.nan if r["mean"] is None else r["mean"] for r in rows])
        low = np.array([np.nan if r["min"] is None else r["min"] for r in rows])
        high = np.array([np.nan if r["max"] is None else r["max"] for r in rows])
        (line,) = ax.plot(n, mean, marker="o", label=f"{condition} (mean over seeds)")
        ax.fill_between(
            n, low, high, alpha=0.2, color=line.get_color(), label=f"{condition} (min-max)"
        )
    sizes = sorted({r["train_images"] for rows in summary.values() for r in rows})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("training images (count)")
    ax.set_ylabel(metric_label)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title)
    return _save(fig, path)


def confound(groups: dict[str, Any], path: Path, encoder: str) -> Path:
    """Probe accuracy per group of pairs with its interval, against the 0.5 of no leak."""
    shown = [(name, g) for name, g in groups.items() if "accuracy" in g]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.6 * len(shown) + 2), 4.5))
    for k, (_, g) in enumerate(shown):
        v, (lo, hi) = g["accuracy"]["value"], g["accuracy"]["ci"]
        ax.bar(k, v, 0.6, yerr=[[v - lo], [hi - v]], capsize=4, color="tab:blue")
        ax.text(k, min(1.0, hi) + 0.02, f"{v:.2f} ({g['pairs']} pairs)", ha="center", fontsize=8)
    ax.axhline(0.5, ls="--", color="grey", label="0.5 = no leak")
    ax.set_xticks(range(len(shown)), [name for name, _ in shown])
    ax.set_xlabel("pairs")
    ax.set_ylabel("probe accuracy, held out (fraction; bar: CI)")
    ax.set_ylim(0, 1.1)
    ax.legend(loc="lower right", fontsize="small")
    title = (
        f"Confound check: can a linear probe on {encoder} features tell the edited image of "
        "a pair from the kept one?"
    )
    # Wrapped to the figure's width: a long encoder name must not push the title off it.
    ax.set_title(textwrap.fill(title, width=int(fig.get_figwidth() * 9)), fontsize="medium")
    return _save(fig, path)
