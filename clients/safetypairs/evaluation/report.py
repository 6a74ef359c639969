"""An evaluation's output folder:

OUT/results.json      every metric with its interval, the model, the data, notes
OUT/scores.jsonl      per image: id, labels, the model's probabilities and decisions
OUT/per_category.png  precision, recall, F1 (and pair accuracy, flip rate) per category
OUT/roc.png, pr.png   ROC and precision-recall curves, overall and per category
OUT/confusion.png     true class vs the verdict's category
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetypairs.evaluation import plots
from safetypairs.evaluation.datasets_in import EvalSet
from safetypairs.evaluation.evaluate import Settings, evaluate, tasks
from safetypairs.evaluation.scorers import Scores


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def write_report(
    data: EvalSet, scores: Scores, out: Path, settings: Settings | None = None
) -> dict[str, Any]:
    """Evaluate, write the folder, return the results (with the files written)."""
    out.mkdir(parents=True, exist_ok=True)
    results = evaluate(data, scores, settings)
    with (out / "scores.jsonl").open("w") as f:
        for i, item in enumerate(data.items):
            row = {
                "id": item.id,
                "labels": sorted(item.labels),
                "unsafe_probability": round(float(scores.unsafe_probability[i]), 6),
                "unsafe": bool(scores.unsafe[i]),
                "probabilities": {
                    c: round(float(p), 6)
                    for c, p in zip(scores.categories, scores.probabilities[i], strict=True)
                },
                "flagged": [
                    c for c, f in zip(scores.categories, scores.flagged[i], strict=True) if f
                ],
            }
            f.write(json.dumps(row) + "\n")
    series = [
        (
            "any category" if name == "any" else name,
            t.truth[t.images],
            t.score[t.images],
            t.pred[t.images],
        )
        for name, t in tasks(data, scores).items()
    ]
    figures = [
        plots.per_category(results, out / "per_category.png"),
        *plots.curves(results, series, out / "roc.png", out / "pr.png"),
        plots.confusion(results, out / "confusion.png"),
    ]
    results["files"] = [p.name for p in [out / "scores.jsonl", *figures]]
    write_json(out / "results.json", results)
    return results
