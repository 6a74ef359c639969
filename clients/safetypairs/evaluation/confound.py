"""The confound check: does a pair dataset leak "which image was edited" rather than "which
image is unsafe"?

A linear probe (scikit-learn's L2-regularised LogisticRegression on standardised encoder
embeddings) learns to tell each pair's edited member from its kept member from one image at a
time, labels ignored. Its accuracy on held-out pairs (scikit-learn's StratifiedKFold over pairs
as units, stratified by edit direction) with a BCa bootstrap interval over pairs: 0.5 = no
leak a single-image classifier such as a guard could exploit; well above 0.5 = edited images
carry a trace (colour shift, blur, resampling) that a guard trained on the pairs may learn
instead of the safety feature.

When every edit goes the same way (always to unsafe, say), "edited" and "unsafe" coincide and
the probe may learn the safety feature itself, so the report gives the accuracy per edit
direction and their mean (balanced accuracy), and says when only one direction exists.
Artifact-matched pairs (the kept member went through the editor too) and plain ones are
probed separately when the dataset records which is which.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.policy import Policy, default_policy
from safetypairs.evaluation import metrics, plots
from safetypairs.evaluation.datasets_in import EvalPair, EvalSet, ReadOptions, load_eval_set
from safetypairs.evaluation.evaluate import rounded, with_ci
from safetypairs.evaluation.report import write_json

MIN_PAIRS = 6
GROUPS = {True: "artifact-matched", False: "plain", None: "not recorded"}


@dataclass
class ConfoundConfig:
    pairs: list[Path]
    out: Path
    encoder: str = "efficientnet-lite0"
    folds: int = 5
    l2: float = 1.0
    seed: int = 0
    resamples: int = 1000
    level: float = 0.95
    cache: Path | None = None  # embedding cache; default OUT/.embeddings
    read: ReadOptions = field(default_factory=ReadOptions)


def probe(l2: float, n_train: int) -> Pipeline:
    """Standardise, then L2-regularised logistic regression (scikit-learn): the mean log-loss
    plus l2/2 |w|^2, which in scikit-learn's terms (C x the summed loss + |w|^2 / 2) is
    C = 1 / (l2 x the number of training images)."""
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0 / (l2 * n_train), max_iter=5000)
    )


def folds_over_pairs(strata: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Held-out pair indices per fold: StratifiedKFold over pairs (units, never images), by
    edit direction so every fold holds both directions; plain shuffled k-fold when a direction
    has fewer pairs than folds."""
    m = len(strata)
    k = min(folds, m)
    _, counts = np.unique(strata, return_counts=True)
    splitter = (
        StratifiedKFold(k, shuffle=True, random_state=seed)
        if counts.min() >= k
        else KFold(k, shuffle=True, random_state=seed)
    )
    return [test for _, test in splitter.split(np.zeros((m, 1)), strata)]


def probe_scores(
    feats: np.ndarray,
    pairs: list[tuple[int, int]],
    strata: np.ndarray,
    folds: int,
    l2: float,
    seed: int,
) -> np.ndarray:
    """Held-out P(edited) for (edited, kept) of every pair: (m, 2), by k-fold over pairs."""
    out = np.zeros((len(pairs), 2))
    for fold in folds_over_pairs(strata, folds, seed):
        train = np.setdiff1d(np.arange(len(pairs)), fold)
        rows = np.array([pairs[i] for i in train]).ravel()  # edited, kept, edited, kept, ...
        model = probe(l2, len(rows)).fit(feats[rows], np.tile([1, 0], len(train)))
        test = np.array([pairs[i] for i in fold])  # (f, 2)
        out[fold] = model.predict_proba(feats[test.ravel()])[:, 1].reshape(-1, 2)
    return out


def _direction(data: EvalSet, pair: EvalPair) -> str:
    edited, kept = (pair.a, pair.b) if pair.edited == "a" else (pair.b, pair.a)
    e, k = bool(data.items[edited].labels), bool(data.items[kept].labels)
    return "to unsafe" if e and not k else "to safe" if k and not e else "unsafe to unsafe"


def _group_result(
    data: EvalSet, pairs: list[EvalPair], feats: np.ndarray, config: ConfoundConfig
) -> dict[str, Any]:
    if len(pairs) < MIN_PAIRS:
        return {"pairs": len(pairs), "status": f"too few pairs (fewer than {MIN_PAIRS})"}
    rows = [(p.a, p.b) if p.edited == "a" else (p.b, p.a) for p in pairs]
    directions = np.array([_direction(data, q) for q in pairs])
    p = probe_scores(feats, rows, directions, config.folds, config.l2, config.seed)
    right = (p[:, 0] >= 0.5).astype(int) + (p[:, 1] < 0.5).astype(int)  # 0..2 per pair
    boot = {"resamples": config.resamples, "level": config.level, "seed": config.seed}

    def accuracy(r: np.ndarray) -> np.ndarray:
        return right[r].sum(-1) / (2 * r.shape[-1])

    def balanced(r: np.ndarray) -> np.ndarray:
        per = []
        for d in ("to unsafe", "to safe"):
            mask = directions[r] == d
            with np.errstate(invalid="ignore"):
                per.append(np.where(mask, right[r], 0).sum(-1) / (2 * mask.sum(-1)))
        return np.mean(per, axis=0)

    ident = np.arange(len(pairs))
    by_direction = {
        d: {
            "pairs": int((directions == d).sum()),
            "accuracy": rounded(right[directions == d].mean() / 2),
        }
        for d in sorted(set(directions))
    }
    return {
        "pairs": len(pairs),
        "accuracy": with_ci(
            float(accuracy(ident)), metrics.bootstrap_ci(accuracy, len(pairs), **boot)
        ),
        "balanced_accuracy": with_ci(
            float(balanced(ident)), metrics.bootstrap_ci(balanced, len(pairs), **boot)
        ),
        "pairwise_accuracy": rounded(float(metrics.flip_rate(p[:, 0], p[:, 1]))),
        "by_direction": by_direction,
    }


def run_confound_check(config: ConfoundConfig, policy: Policy | None = None) -> dict[str, Any]:
    from safetypairs.contract.training_data import Example
    from safetypairs.training.embeddings import EmbeddingCache
    from safetypairs.training.encoders import load_encoder

    data = load_eval_set(config.pairs, policy or default_policy(), config.read)
    known = [p for p in data.pairs if p.edited is not None]
    if not known:
        raise InvalidInput(
            'no pair says which member was edited: the confound check needs "edited": '
            '"a" or "b" on the pair records (or a member with "role": "edit")'
        )
    config.out.mkdir(parents=True, exist_ok=True)
    encoder = load_encoder(config.encoder)
    paths = data.materialise(config.out / "images")
    examples = [
        Example(path, item.labels, item.id, item.record, item.digest)
        for path, item in zip(paths, data.items, strict=True)
    ]
    cache = EmbeddingCache(config.cache or config.out / ".embeddings", encoder)
    feats = cache.embed(examples).astype(np.float64)

    groups: dict[str, Any] = {"all": _group_result(data, known, feats, config)}
    kinds = {p.artifact_matched for p in known}
    if len(kinds) > 1:  # the dataset mixes kinds: probe each on its own
        for kind in sorted(kinds, key=str):
            subset = [p for p in known if p.artifact_matched is kind]
            groups[GROUPS[kind]] = _group_result(data, subset, feats, config)
    notes = [
        "0.5 = the probe cannot tell edited from kept images (no leak); the interval is a "
        f"{config.level:.0%} bootstrap over pairs",
    ]
    directions = {_direction(data, p) for p in known}
    if len(directions & {"to unsafe", "to safe"}) < 2:
        notes.append(
            f"every edit goes one way ({', '.join(sorted(directions))}): being edited and being "
            "unsafe coincide, so the accuracy also counts the safety feature itself; balanced "
            "accuracy is undefined. Only a dataset with edits both ways separates the two"
        )
    if len(known) < len(data.pairs):
        notes.append(f"{len(data.pairs) - len(known)} pair(s) do not say which member was edited")
    if encoder.untrained:
        notes.append("UNTRAINED encoder: random features")
    result = {
        "settings": json.loads(json.dumps(asdict(config), default=str)),
        "encoder": {"ref": encoder.ref, "weights": encoder.weights, "untrained": encoder.untrained},
        "artifact_matched_kinds": sorted(GROUPS[k] for k in kinds),
        "groups": groups,
        "notes": notes,
    }
    png = plots.confound(groups, config.out / "confound.png", config.encoder)
    result["files"] = ["confound.json", png.name]
    write_json(config.out / "confound.json", result)
    return result
