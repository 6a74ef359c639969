"""Evaluation commands: `evaluate` (a guard or judge on labelled images and pairs),
`sample-efficiency` (do pairs make guard training cheaper?) and `confound-check` (does a pair
dataset leak which image was edited?). Their work is in safetypairs.evaluation.commands."""

from __future__ import annotations

import argparse

from safetypairs.cli.common import (
    Subcommands,
    add_connection_flags,
    add_max_backoff,
    add_pairs_flag,
    add_progress_flag,
    connect,
    judge_policy,
    local_pair_datasets,
    old_spelling,
)
from safetypairs.client.guard import GuardClient
from safetypairs.client.judge import JudgeClient
from safetypairs.contract.errors import InvalidInput

ENCODER = "efficientnet-lite0"


def register(sub: Subcommands) -> None:
    p = sub.add_parser(
        "evaluate", help="score a guard or judge on labelled images and pairs: metrics + plots"
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        help="labelled images: JSONL/CSV table, folder, or Hugging Face save_to_disk (repeat)",
    )
    add_pairs_flag(p)
    p.add_argument(
        "--guard-model", default="", help="guard artifact (.onnx, ensemble, folder), run here"
    )
    p.add_argument(
        "--guard",
        dest="guard_model",
        action=old_spelling(argparse._StoreAction, "--guard-model"),
        help=argparse.SUPPRESS,
    )
    p.add_argument("--guard-target", default="", help="running guard service, HOST:PORT")
    p.add_argument("--judge-target", default="", help="running judge service, HOST:PORT")
    p.add_argument("--out", required=True, help="folder for results.json, scores and PNGs")
    _add_bootstrap_flags(p)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--threshold", type=float, default=None, help="judge: P(unsafe) for unsafe")
    p.add_argument("--policy", default="", help="judge: custom policy YAML file")
    p.add_argument("--policy-name", default="", help="judge: a policy the server knows by name")
    p.add_argument("--timeout", type=float, default=120.0, help="deadline per call, seconds")
    add_max_backoff(p)
    _add_data_flags(p)
    add_connection_flags(p)
    add_progress_flag(p)
    p.set_defaults(func=cmd_evaluate, extra="eval")

    p = sub.add_parser(
        "sample-efficiency",
        help="train guards on growing subsets with and without pairs, plot metric vs size",
    )
    p.add_argument("--data", action="append", default=[], help="labelled pool (repeat)")
    add_pairs_flag(p, "pair pool: ")
    p.add_argument("--out", required=True, help="folder for the runs, JSON and PNG")
    p.add_argument("--sizes", default="8,16,32", help="training images per run, e.g. 8,16,32")
    p.add_argument("--seeds", default="0,1,2", help="seeds, e.g. 0,1,2")
    p.add_argument("--test", action="append", default=[], help="test set; default: split off")
    p.add_argument("--test-fraction", type=float, default=0.3, help="held out when no --test")
    p.add_argument("--pair-fraction", type=float, default=0.5, help="share of images as pairs")
    p.add_argument("--margin", type=float, default=1.0, help="pairwise margin, with pairs")
    p.add_argument(
        "--metric",
        choices=["f1", "accuracy", "pair_accuracy", "roc_auc"],
        default="f1",
        help="what the plot shows",
    )
    p.add_argument("--encoder", default=ENCODER, help="frozen encoder reference")
    p.add_argument("--categories", default="", help="codes to train; default: all with both")
    p.add_argument("--epochs", type=int, default=300, help="most epochs per head")
    p.add_argument("--cache", default=None, help="embedding cache folder (default: in --out)")
    _add_data_flags(p)
    add_progress_flag(p)
    p.set_defaults(func=cmd_sample_efficiency, extra="models")

    p = sub.add_parser(
        "confound-check", help="does a pair dataset leak which image was edited? (linear probe)"
    )
    add_pairs_flag(p, required=True)
    p.add_argument("--out", required=True, help="folder for confound.json and confound.png")
    p.add_argument("--encoder", default=ENCODER, help="frozen encoder reference")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds over pairs")
    p.add_argument("--seed", type=int, default=0, help="fold and bootstrap seed")
    _add_bootstrap_flags(p)
    p.add_argument("--cache", default=None, help="embedding cache folder (default: in --out)")
    _add_data_flags(p)
    add_progress_flag(p)
    p.set_defaults(func=cmd_confound_check, extra="models")


def _add_bootstrap_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of intervals")


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    """How to read labelled tables that are not in the policy's own terms."""
    p.add_argument(
        "--unsafe-category",
        default="",
        help="the category code binary labels (unsafe/1/true) mean, e.g. O6",
    )
    p.add_argument("--split", default="", help="split of a Hugging Face DatasetDict")
    p.add_argument(
        "--human-accepted-only",
        action="store_true",
        help="read only the pairs people accepted in `review` (reviews.jsonl beside pairs.jsonl)",
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from safetypairs.evaluation.commands import evaluate

    chosen = [x for x in (args.guard_model, args.guard_target, args.judge_target) if x]
    if len(chosen) != 1:
        raise InvalidInput("give exactly one of --guard-model, --guard-target, --judge-target")
    if not args.data and not args.pairs:
        raise InvalidInput("give --data and/or --pairs")
    client: GuardClient | JudgeClient | None = None
    if args.guard_target:
        client = connect(GuardClient, args, args.guard_target, timeout=args.timeout)
    elif args.judge_target:
        client = connect(JudgeClient, args, args.judge_target, timeout=args.timeout)
    with local_pair_datasets(args):
        return evaluate(args, client, judge_policy(args))


def cmd_sample_efficiency(args: argparse.Namespace) -> int:
    from safetypairs.evaluation.commands import sample_efficiency

    with local_pair_datasets(args):
        return sample_efficiency(args)


def cmd_confound_check(args: argparse.Namespace) -> int:
    from safetypairs.evaluation.commands import confound_check

    with local_pair_datasets(args):
        return confound_check(args)
