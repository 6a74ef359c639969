"""Train a guard head on a frozen encoder, calibrate it, export encoder + head as one ONNX graph.

    result = train_guard(TrainConfig(encoder="efficientnet-lite0", data=[...], pairs=[...],
                                     out=Path("my-guard")))

Pair-aware: both images of a pair (and any repeated image) go to the same split, and an
optional margin term makes the head score the unsafe image of each pair above the safe one
by `margin` logits in every category where their labels differ. Thresholds are calibrated per
category on the validation split, for the best F1 or a target precision.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.images import decode_image
from safetypairs.contract.policy import Policy, default_policy
from safetypairs.contract.progress import task
from safetypairs.contract.training_data import (
    LIMITS,
    Example,
    Pair,
    read_labelled,
    read_pairs,
    untrained_sources,
)
from safetypairs.guard.export import export_guard
from safetypairs.guard.preprocess import preprocess
from safetypairs.guard.sidecar import GuardOutput, GuardSidecar
from safetypairs.training.embeddings import EmbeddingCache
from safetypairs.training.encoders import Encoder, load_encoder

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    encoder: str
    out: Path
    data: list[Path] = field(default_factory=list)
    pairs: list[Path] = field(default_factory=list)
    human_accepted_only: bool = False  # only pairs people accepted (the dataset's review log)
    categories: list[str] = field(default_factory=list)  # empty: every category with examples
    head: str = "linear"  # or "mlp"
    hidden: int = 256
    margin: float = 0.0  # 0 turns the pairwise term off
    margin_weight: float = 1.0
    val_fraction: float = 0.25
    seed: int = 0
    epochs: int = 300
    patience: int = 30
    lr: float = 1e-2
    weight_decay: float = 1e-4
    target: str = "f1"  # or "precision:0.9"
    cache: Path | None = None
    name: str = "trained-guard"
    version: str = "1"


@dataclass
class TrainResult:
    onnx_path: Path
    sidecar: GuardSidecar
    embedded: int  # images the encoder ran on (the rest came from the cache)
    cached: int


class LeakageError(AssertionError):
    """An image or a pair lands in both splits."""


def split_groups(
    examples: list[Example], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices of train and validation examples; a group never straddles the two. Identical
    image files join their groups (the same picture twice is one picture)."""
    parent: dict[str, str] = {}

    def root(g: str) -> str:
        while parent.setdefault(g, g) != g:
            g = parent[g]
        return g

    first_group_of: dict[str, str] = {}
    for ex in examples:
        other = first_group_of.setdefault(ex.digest, ex.group)
        parent[root(ex.group)] = root(other)
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(root(ex.group), []).append(i)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    n_val = max(1, round(len(names) * val_fraction)) if len(names) > 1 else 0
    val = sorted(i for g in names[:n_val] for i in groups[g])
    train = sorted(i for g in names[n_val:] for i in groups[g])
    return train, val


def check_no_leakage(examples: list[Example], train: list[int], val: list[int]) -> None:
    def keys(idx: list[int]) -> tuple[set[str], set[str]]:
        return {examples[i].group for i in idx}, {examples[i].digest for i in idx}

    (tg, td), (vg, vd) = keys(train), keys(val)
    if tg & vg or td & vd:
        raise LeakageError(
            f"leakage between splits: groups {sorted(tg & vg)[:5]}, images {len(td & vd)}"
        )


def _head(kind: str, dim: int, n: int, hidden: int) -> torch.nn.Module:
    if kind == "linear":
        return torch.nn.Linear(dim, n)
    if kind == "mlp":
        return torch.nn.Sequential(
            torch.nn.Linear(dim, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(hidden, n),
        )
    raise InvalidInput(f"head must be 'linear' or 'mlp', not {kind!r}")


class EncoderHeadGuard(torch.nn.Module):
    """Pixels -> pooled encoder features -> head -> sigmoid: the graph a guard exports."""

    def __init__(self, encoder: torch.nn.Module, head: torch.nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.encoder(pixel_values)))


def calibrate(scores: np.ndarray, truth: np.ndarray, target: str) -> tuple[float, dict]:
    """Threshold for one category on validation scores: best F1, or the lowest threshold whose
    precision reaches the target. Returns the threshold and the validation figures there."""
    if truth.sum() == 0 or truth.sum() == len(truth):
        return 0.5, {"calibrated": False, "why": "validation split lacks one of the classes"}
    want_precision = None
    if target.startswith("precision:"):
        want_precision = float(target.split(":", 1)[1])
    elif target != "f1":
        raise InvalidInput(f"target must be 'f1' or 'precision:P', not {target!r}")
    best: tuple[float, float, dict] | None = None
    for t in sorted(set(np.round(scores, 6)) | {0.5}):
        pred = scores >= t
        tp = float((pred & truth).sum())
        precision = tp / max(1.0, float(pred.sum()))
        recall = tp / float(truth.sum())
        f1 = 2 * precision * recall / max(1e-9, precision + recall)
        figures = {"precision": precision, "recall": recall, "f1": f1}
        if want_precision is not None:
            if precision >= want_precision and pred.sum() > 0:
                return float(t), {"calibrated": True, "target": target, **figures}
            continue
        if best is None or f1 > best[1]:
            best = (float(t), f1, figures)
    if best is None:  # no threshold reached the precision target
        return 1.0, {"calibrated": False, "why": f"no threshold reaches {target}"}
    return best[0], {"calibrated": True, "target": target, **best[2]}


def _collect(config: TrainConfig, policy: Policy) -> tuple[list[Example], list[Pair]]:
    examples = [ex for path in config.data for ex in read_labelled(path, policy)]
    pairs = [
        p for path in config.pairs for p in read_pairs(path, policy, config.human_accepted_only)
    ]
    examples += [ex for p in pairs for ex in (p.a, p.b)]
    if not examples:
        raise InvalidInput("no training data: give --data and/or --pairs")
    return examples, pairs


def _categories(config: TrainConfig, policy: Policy, examples: list[Example]) -> tuple[str, ...]:
    codes = policy.check_codes(config.categories) if config.categories else policy.codes
    positives = {c: sum(c in ex.labels for ex in examples) for c in codes}
    if config.categories:
        for code in codes:
            if positives[code] == 0 or positives[code] == len(examples):
                raise InvalidInput(
                    f"category {code} has {positives[code]} positive examples out of "
                    f"{len(examples)}: it needs both positive and negative examples"
                )
        return codes
    chosen = tuple(c for c in codes if 0 < positives[c] < len(examples))
    if not chosen:
        raise InvalidInput("no category has both positive and negative examples")
    return chosen


def train_guard(config: TrainConfig, policy: Policy | None = None) -> TrainResult:
    policy = policy or default_policy()
    examples, pairs = _collect(config, policy)  # every record checked before any embedding
    codes = _categories(config, policy, examples)
    train_idx, val_idx = split_groups(examples, config.val_fraction, config.seed)
    check_no_leakage(examples, train_idx, val_idx)
    if not val_idx:
        raise InvalidInput("too little data for a validation split (need two or more groups)")

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    with task(f"loading the encoder {config.encoder}"):
        encoder = load_encoder(config.encoder)
    cache = EmbeddingCache(config.cache or config.out.parent / ".embeddings", encoder)
    feats = torch.from_numpy(cache.embed(examples))
    y = torch.tensor([[c in ex.labels for c in codes] for ex in examples], dtype=torch.float32)

    index = {id(ex): i for i, ex in enumerate(examples)}
    train_set = set(train_idx)
    pair_rows = [(index[id(p.a)], index[id(p.b)]) for p in pairs if index[id(p.a)] in train_set]
    head = _train_head(config, encoder, feats, y, train_idx, val_idx, pair_rows)

    with torch.no_grad():
        val_scores = torch.sigmoid(head(feats[val_idx])).numpy()
    thresholds, calibration = {}, {}
    for j, code in enumerate(codes):
        t, figures = calibrate(val_scores[:, j], y[val_idx, j].numpy().astype(bool), config.target)
        thresholds[code], calibration[code] = t, figures

    untrained = untrained_reasons(encoder, pairs)
    summary = {
        "untrained": untrained,
        "encoder": encoder.key,
        "images": len(examples),
        "pairs": len(pairs),
        "train": len(train_idx),
        "validation": len(val_idx),
        "positives": {c: int(y[:, j].sum()) for j, c in enumerate(codes)},
        "head": config.head,
        "margin": config.margin,
        "seed": config.seed,
        "sources": [str(p) for p in [*config.data, *config.pairs]],
        "calibration": calibration,
    }
    sidecar = GuardSidecar(
        name=config.name,
        version=config.version,
        description=f"{config.head} head on {encoder.ref} features, categories {', '.join(codes)}",
        untrained=bool(untrained),
        input=encoder.input,
        output=GuardOutput("probabilities", "probabilities"),
        categories=codes,
        thresholds=thresholds,
        opset=0,
        weights=encoder.weights + ("; RANDOM encoder weights" if encoder.untrained else ""),
        training=(
            f"{config.head} head trained on {len(train_idx)} images ({len(pairs)} pairs in all, "
            f"margin {config.margin}), validated on {len(val_idx)}; thresholds for "
            f"{config.target}: "
            + "; ".join(_calibration_text(c, thresholds[c], calibration[c]) for c in codes)
        ),
        notice=f"UNTRAINED: {'; '.join(untrained)}: its scores mean nothing about safety"
        if untrained
        else "",
        policy=None if policy == default_policy() else _policy_dict(policy),
        extra={"training": summary},
    )
    # Parity on real images: the validation images, as the served graph will see them.
    real = np.stack(
        [
            preprocess(decode_image(examples[i].path.read_bytes(), LIMITS), encoder.input)
            for i in val_idx[: max(2, min(8, len(val_idx)))]
        ]
    )
    if len(real) < 2:
        real = np.concatenate([real, real])
    onnx_path = config.out / "guard.onnx"
    with task("exporting the ONNX graph, checking parity"):
        written = export_guard(
            EncoderHeadGuard(encoder.module, head),
            sidecar,
            onnx_path,
            example=torch.from_numpy(real),
            atol=1e-4,
        )
    log.info("trained guard written to %s", onnx_path)
    return TrainResult(onnx_path, written, cache.stats.computed, cache.stats.cached)


def untrained_reasons(encoder: Encoder, pairs: list[Pair]) -> list[str]:
    """Why a guard trained on these inputs means nothing: an encoder with random weights, or
    pairs labelled or edited by untrained models. Empty when neither."""
    reasons = [f"encoder {encoder.ref} has random weights"] if encoder.untrained else []
    made_by = untrained_sources([p.untrained for p in pairs])
    if made_by:
        reasons.append("trained on pairs made by untrained models: " + ", ".join(made_by))
    return reasons


def _calibration_text(code: str, threshold: float, figures: dict) -> str:
    if not figures.get("calibrated"):
        return f"{code} {threshold:.3f} (not calibrated: {figures.get('why')})"
    return (
        f"{code} {threshold:.3f} (validation precision {figures['precision']:.2f}, "
        f"recall {figures['recall']:.2f})"
    )


def _policy_dict(policy: Policy) -> dict:
    return {
        "name": policy.name,
        "version": policy.version,
        "categories": [c.to_dict() for c in policy.categories],
    }


def _train_head(
    config: TrainConfig,
    encoder: Encoder,
    feats: torch.Tensor,
    y: torch.Tensor,
    train_idx: list[int],
    val_idx: list[int],
    pair_rows: list[tuple[int, int]],
) -> torch.nn.Module:
    head = _head(config.head, encoder.dim, y.shape[1], config.hidden)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    bce = torch.nn.BCEWithLogitsLoss()
    # Standardising features keeps one learning rate right for every encoder; folded into the
    # first layer afterwards so the exported graph takes raw features.
    mean, std = feats[train_idx].mean(0), feats[train_idx].std(0).clamp_min(1e-6)
    x = (feats - mean) / std
    a_rows = torch.tensor([a for a, _ in pair_rows], dtype=torch.long)
    b_rows = torch.tensor([b for _, b in pair_rows], dtype=torch.long)
    best, best_state, stale = float("inf"), None, 0
    for _ in range(config.epochs):
        head.train()
        opt.zero_grad()
        loss = bce(head(x[train_idx]), y[train_idx])
        if config.margin > 0 and pair_rows:
            za, zb = head(x[a_rows]), head(x[b_rows])
            sign = y[b_rows] - y[a_rows]  # +1 where b is the unsafe one, -1 where a is
            differs = sign != 0
            hinge = torch.relu(config.margin - sign * (zb - za))[differs]
            if hinge.numel():
                loss = loss + config.margin_weight * hinge.mean()
        loss.backward()
        opt.step()
        head.eval()
        with torch.no_grad():
            val_loss = float(bce(head(x[val_idx]), y[val_idx]))
        if val_loss < best - 1e-5:
            best, stale = val_loss, 0
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    assert best_state is not None
    head.load_state_dict(best_state)
    head.eval()
    first = head if isinstance(head, torch.nn.Linear) else head[0]
    with torch.no_grad():  # fold (x - mean) / std into the first layer
        first.weight.div_(std)
        first.bias.sub_((first.weight * mean).sum(1))
    return head
