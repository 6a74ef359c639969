"""The evaluation commands behind the CLI (`evaluate`, `sample-efficiency`, `confound-check`):
arguments in, the Python API called, a short summary printed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from safetypairs.client.guard import GuardClient
from safetypairs.client.judge import JudgeClient, PolicyLike
from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.policy import Policy, default_policy
from safetypairs.evaluation.confound import ConfoundConfig, run_confound_check
from safetypairs.evaluation.datasets_in import ReadOptions, load_eval_set
from safetypairs.evaluation.evaluate import Settings
from safetypairs.evaluation.report import write_report
from safetypairs.evaluation.sample_efficiency import ExperimentConfig, run_experiment
from safetypairs.evaluation.scorers import (
    score_guard_service,
    score_judge_service,
    score_onnx_guard,
)


def _read_options(args: argparse.Namespace) -> ReadOptions:
    return ReadOptions(
        unsafe_category=args.unsafe_category,
        split=args.split,
        human_accepted_only=args.human_accepted_only,
    )


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidInput(f"{what} must be integers separated by commas, not {text!r}") from None


def _fmt(metric: dict[str, Any]) -> str:
    value, (lo, hi) = metric["value"], metric["ci"]
    if value is None:
        return "n/a"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{value:.3f}"


def evaluate(
    args: argparse.Namespace,
    client: GuardClient | JudgeClient | None,
    policy: PolicyLike,
) -> int:
    """`client` is the service to score with (built by the CLI from its connection flags), or
    None to run the ONNX guard `args.guard_model` in this process."""
    local_policy = policy if isinstance(policy, Policy) else default_policy()
    data = load_eval_set([*args.data, *args.pairs], local_policy, _read_options(args))
    if isinstance(client, JudgeClient):
        scores = score_judge_service(
            data, client, policy=policy, threshold=args.threshold, max_backoff_s=args.max_backoff
        )
    elif isinstance(client, GuardClient):
        scores = score_guard_service(data, client, max_backoff_s=args.max_backoff)
    else:
        scores = score_onnx_guard(data, args.guard_model)
    settings = Settings(resamples=args.resamples, level=args.level, seed=args.seed)
    results = write_report(data, scores, Path(args.out), settings)
    print(f"{scores.model} on {len(data.items)} images, {len(data.pairs)} pairs -> {args.out}")
    for note in results["notes"]:
        print(f"  note: {note}")
    level = f"{args.level:.0%} CI"
    rows = {"any category": results["overall"], **results["categories"]}
    for name, row in rows.items():
        if "images" not in row:
            continue
        images = row["images"]
        line = (
            f"  {name:>12}: accuracy {_fmt(images['accuracy'])}  precision "
            f"{_fmt(images['precision'])}  recall {_fmt(images['recall'])}  "
            f"F1 {_fmt(images['f1'])}"
        )
        if "pairs" in row:
            line += (
                f"  pair accuracy {_fmt(row['pairs']['pair_accuracy'])}  flip rate "
                f"{_fmt(row['pairs']['flip_rate'])}"
            )
        print(line)
    print(f"  (value [{level}]; files: {', '.join(results['files'])}, results.json)")
    return 0


def sample_efficiency(args: argparse.Namespace) -> int:
    config = ExperimentConfig(
        data=[Path(p) for p in args.data],
        pairs=[Path(p) for p in args.pairs],
        out=Path(args.out),
        sizes=_ints(args.sizes, "--sizes"),
        seeds=_ints(args.seeds, "--seeds"),
        test=[Path(p) for p in args.test],
        test_fraction=args.test_fraction,
        pair_fraction=args.pair_fraction,
        margin=args.margin,
        metric=args.metric,
        encoder=args.encoder,
        categories=[c.strip() for c in args.categories.split(",") if c.strip()],
        epochs=args.epochs,
        cache=Path(args.cache) if args.cache else None,
        read=_read_options(args),
    )
    result = run_experiment(config)
    print(f"{result['metric']['label']} on {result['test_set']['images']} test images:")
    for condition, rows in result["summary"].items():
        cells = "  ".join(
            f"n={r['train_images']}: {r['mean']:.3f} ({r['min']:.3f}-{r['max']:.3f})"
            if r["mean"] is not None
            else f"n={r['train_images']}: n/a"
            for r in rows
        )
        print(f"  {condition:>13}: {cells}")
    for note in result["notes"]:
        print(f"  note: {note}")
    print(f"wrote {Path(args.out) / 'sample_efficiency.png'} and sample_efficiency.json")
    return 0


def confound_check(args: argparse.Namespace) -> int:
    config = ConfoundConfig(
        pairs=[Path(p) for p in args.pairs],
        out=Path(args.out),
        encoder=args.encoder,
        folds=args.folds,
        seed=args.seed,
        resamples=args.resamples,
        level=args.level,
        cache=Path(args.cache) if args.cache else None,
        read=_read_options(args),
    )
    result = run_confound_check(config)
    print(f"probe accuracy telling the edited image from the kept one (0.5 = no leak), {args.out}")
    for name, group in result["groups"].items():
        if "accuracy" not in group:
            print(f"  {name:>16}: {group['pairs']} pairs, {group['status']}")
            continue
        print(
            f"  {name:>16}: {group['pairs']} pairs, accuracy {_fmt(group['accuracy'])}, "
            f"balanced over edit directions {_fmt(group['balanced_accuracy'])}"
        )
    for note in result["notes"]:
        print(f"  note: {note}")
    return 0
