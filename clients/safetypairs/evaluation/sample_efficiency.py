"""The sample-efficiency experiment: guards trained (safetypairs.training.train_guard) on
growing subsets of the data, without and with pairs, over several seeds, each evaluated on
one held-out test set; the metric plotted against the number of training images.

At every size N both conditions get the same budget of N training images:
  * "labelled only": N ordinary labelled images;
  * "with pairs": round(N x pair_fraction / 2) pairs (both members, pairwise margin loss on)
    and ordinary labelled images for the rest.
Subsets grow by prefix (a seed's N=16 run holds its N=8 run's images) and are stratified by
label set, so small subsets see every class the pool has. The test set is split off once,
before any subset is drawn (pairs as units), and no test image is ever trained on.

    OUT/sample_efficiency.json   settings, test set, every run's metrics, the summary
    OUT/sample_efficiency.png    metric vs training images, mean over seeds and min-max band
    OUT/runs/<condition>/n<N>/seed<S>/   each run's training files and guard
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.pair_record import Member, PairRecord, to_line
from safetypairs.contract.policy import Policy, default_policy
from safetypairs.contract.progress import start
from safetypairs.evaluation import plots
from safetypairs.evaluation.datasets_in import EvalPair, EvalSet, Item, ReadOptions, load_eval_set
from safetypairs.evaluation.evaluate import Settings, evaluate
from safetypairs.evaluation.report import write_json
from safetypairs.evaluation.scorers import score_onnx_guard

log = logging.getLogger(__name__)

LABELLED, WITH_PAIRS = "labelled only", "with pairs"
METRICS = {  # name: axis label
    "f1": "macro F1 over the trained categories (0-1)",
    "accuracy": "accuracy, any category (fraction of test images right)",
    "pair_accuracy": "pair accuracy (fraction of test pairs with both right)",
    "roc_auc": "ROC AUC, any category (0-1)",
}


@dataclass
class ExperimentConfig:
    data: list[Path]  # the labelled pool (any layout evaluation reads)
    pairs: list[Path]  # the pair pool
    out: Path
    sizes: list[int]  # training images per run
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    test: list[Path] = field(default_factory=list)  # empty: split test_fraction off the pools
    test_fraction: float = 0.3
    pair_fraction: float = 0.5
    margin: float = 1.0
    metric: str = "f1"
    encoder: str = "efficientnet-lite0"
    categories: list[str] = field(default_factory=list)  # empty: all with both classes
    epochs: int = 300
    cache: Path | None = None  # embedding cache; default OUT/.embeddings
    read: ReadOptions = field(default_factory=ReadOptions)


@dataclass(frozen=True)
class Pools:
    singles: list[Item]
    pairs: list[tuple[Item, Item]]


def _pools(data: EvalSet) -> Pools:
    in_pairs = {i for p in data.pairs for i in (p.a, p.b)}
    return Pools(
        [it for i, it in enumerate(data.items) if i not in in_pairs],
        [(data.items[p.a], data.items[p.b]) for p in data.pairs],
    )


def split_test(pools: Pools, fraction: float, seed: int = 0) -> tuple[Pools, EvalSet]:
    """Hold out `fraction` of the singles and of the pairs (as units) as the test set."""
    rng = random.Random(seed)
    singles, pairs = list(pools.singles), list(pools.pairs)
    rng.shuffle(singles)
    rng.shuffle(pairs)
    ns, np_ = round(len(singles) * fraction), round(len(pairs) * fraction)
    test = EvalSet(sources=["held out of the training pools"])
    test.items = singles[:ns]
    for k, (a, b) in enumerate(pairs[:np_]):
        test.items += [a, b]
        test.pairs.append(EvalPair(f"test-{k}", len(test.items) - 2, len(test.items) - 1))
    return Pools(singles[ns:], pairs[np_:]), test


def stratified_order(items: list[Item], seed: int) -> list[Item]:
    """Items shuffled within each label set, then taken round-robin across label sets: every
    prefix is as balanced as the pool allows."""
    rng = random.Random(seed)
    strata: dict[tuple[str, ...], list[Item]] = {}
    for item in items:
        strata.setdefault(tuple(sorted(item.labels)), []).append(item)
    queues = [strata[k] for k in sorted(strata)]
    for q in queues:
        rng.shuffle(q)
    order = []
    for depth in range(max(map(len, queues), default=0)):
        order += [q[depth] for q in queues if depth < len(q)]
    return order


def _write_run(folder: Path, singles: list[Item], pairs: list[tuple[Item, Item]], files: dict):
    """The run's training files in the training formats, image paths absolute."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"image": str(files[s.digest]), "labels": sorted(s.labels)} for s in singles]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    records = [
        PairRecord(
            id=f"p{k}",
            a=Member(image=str(files[a.digest]), labels=tuple(sorted(a.labels))),
            b=Member(image=str(files[b.digest]), labels=tuple(sorted(b.labels))),
        )
        for k, (a, b) in enumerate(pairs)
    ]
    (folder / "pairs.jsonl").write_text("".join(to_line(r) + "\n" for r in records))
    return [folder / "train.jsonl"] if singles else [], [folder / "pairs.jsonl"] if pairs else []


def _figures(results: dict[str, Any]) -> dict[str, float | None]:
    overall = results["overall"]
    pairs = overall.get("pairs", {})
    return {
        "f1": results["macro"]["f1"],
        "accuracy": overall["images"]["accuracy"]["value"],
        "roc_auc": overall["images"]["roc_auc"]["value"],
        "pair_accuracy": pairs.get("pair_accuracy", {}).get("value"),
        "flip_rate": pairs.get("flip_rate", {}).get("value"),
    }


def pairs_for(size: int, fraction: float) -> int:
    """Pairs in a "with pairs" run of `size` images: at least one, at most size / 2."""
    return max(1, min(size // 2, round(size * fraction / 2)))


def _check(config: ExperimentConfig, pools: Pools) -> None:
    if config.metric not in METRICS:
        raise InvalidInput(f"metric must be one of {', '.join(METRICS)}, not {config.metric!r}")
    if not config.sizes or min(config.sizes) < 4:
        raise InvalidInput("give training sizes of 4 images or more (--sizes 8,16,32)")
    if not config.seeds:
        raise InvalidInput("give at least one seed")
    if not 0.0 < config.pair_fraction <= 1.0:
        raise InvalidInput(f"pair fraction {config.pair_fraction} must lie in (0, 1]")
    largest = max(config.sizes)
    need_pairs = pairs_for(largest, config.pair_fraction)
    if len(pools.singles) < largest:
        raise InvalidInput(
            f"the largest size, {largest}, needs {largest} labelled training images; the pool "
            f"has {len(pools.singles)} after the test split"
        )
    if len(pools.pairs) < need_pairs or len(pools.singles) < largest - 2 * need_pairs:
        raise InvalidInput(
            f"size {largest} with pairs needs {need_pairs} pairs; the pool has "
            f"{len(pools.pairs)} after the test split"
        )


def run_experiment(config: ExperimentConfig, policy: Policy | None = None) -> dict[str, Any]:
    from safetypairs.training.train import TrainConfig, train_guard

    policy = policy or default_policy()
    source = load_eval_set([*config.data, *config.pairs], policy, config.read)
    pools = _pools(source)
    if config.test:
        test = load_eval_set(config.test, policy, config.read)
    else:
        pools, test = split_test(pools, config.test_fraction)
    # Pairs made by untrained models, in training or in the test set: every curve means nothing.
    made_by = source.untrained_sources() + (test.untrained_sources() if config.test else [])
    held_out = {item.digest for item in test.items}
    pools = Pools(  # the same picture in the test set and in training would flatter the guard
        [s for s in pools.singles if s.digest not in held_out],
        [(a, b) for a, b in pools.pairs if not {a.digest, b.digest} & held_out],
    )
    _check(config, pools)
    # One category set for every run, so the runs answer the same question.
    pool_items = [*pools.singles, *[m for p in pools.pairs for m in p]]
    categories = config.categories or [
        c for c in policy.codes if 0 < sum(c in i.labels for i in pool_items) < len(pool_items)
    ]
    if config.metric == "pair_accuracy" and not test.pairs:
        raise InvalidInput("metric pair_accuracy needs pairs in the test set")
    config.out.mkdir(parents=True, exist_ok=True)
    every = EvalSet(pool_items)
    files = dict(
        zip(
            (i.digest for i in every.items),
            every.materialise(config.out / "images"),
            strict=True,
        )
    )
    runs = []
    shown = start("training runs", 2 * len(config.seeds) * len(config.sizes), "run")
    for seed in config.seeds:
        singles = stratified_order(pools.singles, seed)
        pairs = list(pools.pairs)
        random.Random(seed).shuffle(pairs)
        for size in sorted(config.sizes):
            k = pairs_for(size, config.pair_fraction)
            plans = {
                LABELLED: (singles[:size], [], 0.0),
                WITH_PAIRS: (singles[: size - 2 * k], pairs[:k], config.margin),
            }
            for condition, (run_singles, run_pairs, margin) in plans.items():
                folder = config.out / "runs" / condition.replace(" ", "-") / f"n{size}/seed{seed}"
                data, pair_files = _write_run(folder, run_singles, run_pairs, files)
                run = {"condition": condition, "train_images": size, "seed": seed}
                run |= {"pairs": len(run_pairs), "margin": margin}
                try:
                    trained = train_guard(
                        TrainConfig(
                            encoder=config.encoder,
                            out=folder,
                            data=data,
                            pairs=pair_files,
                            categories=categories,
                            margin=margin,
                            seed=seed,
                            epochs=config.epochs,
                            cache=config.cache or config.out / ".embeddings",
                        ),
                        policy,
                    )
                except InvalidInput as exc:  # e.g. a subset without one class: say so, go on
                    log.warning("%s n=%d seed %d: %s", condition, size, seed, exc.message)
                    runs.append(run | {"error": exc.message})
                    shown.advance()
                    continue
                scores = score_onnx_guard(test, str(trained.onnx_path))
                results = evaluate(test, scores, Settings(resamples=200, seed=seed))
                run |= {
                    "guard": str(trained.onnx_path),
                    "categories": list(scores.categories),
                    "untrained_encoder": scores.untrained,
                }
                runs.append(run | _figures(results))
                log.info("%s n=%d seed %d: %s", condition, size, seed, _figures(results))
                shown.note(f"{condition} n={size} seed {seed}")
                shown.advance()
    shown.close()
    return _summarise(config, test, runs, made_by)


def _summarise(
    config: ExperimentConfig, test: EvalSet, runs: list[dict], made_by: list[str]
) -> dict[str, Any]:
    summary: dict[str, list[dict[str, Any]]] = {}
    for condition in (LABELLED, WITH_PAIRS):
        rows = []
        for size in sorted(config.sizes):
            values = [
                r[config.metric]
                for r in runs
                if r["condition"] == condition
                and r["train_images"] == size
                and r.get(config.metric) is not None
            ]
            v = np.array(values, dtype=float)
            rows.append(
                {
                    "train_images": size,
                    "seeds": len(values),
                    "mean": float(v.mean()) if v.size else None,
                    "std": float(v.std(ddof=1)) if v.size > 1 else None,
                    "min": float(v.min()) if v.size else None,
                    "max": float(v.max()) if v.size else None,
                    "values": values,
                }
            )
        summary[condition] = rows
    label = METRICS[config.metric]
    untrained = any(r.get("untrained_encoder") for r in runs)
    notes = [
        f"both conditions get the same number of training images; 'with pairs' takes "
        f"{config.pair_fraction:.0%} of them as pairs (margin {config.margin})",
        f"test set: {len(test.items)} images, {len(test.pairs)} pairs; bands span the lowest "
        f"to the highest of {len(config.seeds)} seeds",
    ]
    if untrained:
        notes.append("UNTRAINED encoder: random features, the curves measure nothing")
    if made_by:
        notes.append(
            "pairs made by UNTRAINED models, the curves measure nothing: " + ", ".join(made_by)
        )
    failed = [r for r in runs if "error" in r]
    if failed:
        notes.append(f"{len(failed)} run(s) could not train; see their 'error'")
    title = (
        f"Sample efficiency: {config.encoder} + linear head, {len(config.seeds)} seeds\n"
        f"test set: {len(test.items)} images, {len(test.pairs)} pairs"
    )
    png = plots.learning_curves(
        summary,
        config.out / "sample_efficiency.png",
        f"{label} on the test set",
        plots.titled(title, untrained or bool(made_by)),
    )
    result = {
        "settings": json.loads(json.dumps(asdict(config), default=str)),
        "metric": {"name": config.metric, "label": label},
        "test_set": {
            "images": len(test.items),
            "pairs": len(test.pairs),
            "sha256": sorted({item.digest for item in test.items}),  # for leakage audits
        },
        "untrained": untrained or bool(made_by),
        "notes": notes,
        "summary": summary,
        "runs": runs,
        "files": [png.name, "sample_efficiency.json"],
    }
    write_json(config.out / "sample_efficiency.json", result)
    return result
