"""Pair dataset commands: `generate` (judge + editor make verified counterfactual pairs),
`merge-datasets`, `report`, `export` and `import`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetypairs.cli.common import (
    Subcommands,
    add_connection_flags,
    add_max_backoff,
    add_progress_flag,
    codes,
    connect,
    image_paths,
    old_spelling,
    target,
    usage_error,
)
from safetypairs.cli.progress import counter
from safetypairs.contract.pair_record import ACCEPTED
from safetypairs.pairs.lease import DEFAULT_LEASE_S


def register(sub: Subcommands) -> None:
    p = sub.add_parser("generate", help="generate verified counterfactual pairs into a dataset")
    p.add_argument("images", nargs="*", help="source image files, or folders searched for images")
    p.add_argument(
        "--images",
        dest="images_flag",
        action=old_spelling(argparse._AppendAction, "positional IMAGES"),
        default=[],
        help=argparse.SUPPRESS,
    )
    p.add_argument(
        "--out",
        required=True,
        help="dataset folder or object store URL (s3://bucket/prefix); an existing one is resumed",
    )
    p.add_argument("--policy", default="", help="policy YAML; default: the built-in O1..O9")
    p.add_argument("--categories", default="", help="codes to make pairs for; default: all")
    p.add_argument("--directions", default="to_safe,to_unsafe", help="to_safe and/or to_unsafe")
    p.add_argument("--judge-target", default=target("judge"), help="judge gRPC address")
    p.add_argument(
        "--edit-target",
        default=target("edit"),
        help="edit gRPC address (env SAFETYPAIRS_EDIT_TARGET)",
    )
    p.add_argument("--proposals", type=int, default=3, help="instructions per attempt")
    p.add_argument("--attempts", type=int, default=2, help="attempts per image and category")
    p.add_argument("--seed", type=int, default=0, help="first seed of proposals and edits")
    p.add_argument(
        "--no-artifact-match",
        action="store_true",
        help="keep the source itself, not its pass through the editor",
    )
    p.add_argument("--threshold", type=float, default=0.5, help="P(unsafe) that means unsafe")
    p.add_argument("--margin", type=float, default=0.1, help="distance past the threshold")
    p.add_argument("--min-ssim", type=float, default=0.85, help="least SSIM outside the edit")
    p.add_argument("--max-changed", type=float, default=0.35, help="largest changed fraction")
    p.add_argument("--edit-steps", type=int, default=None, help="diffusion steps per edit")
    p.add_argument("--judge-concurrency", type=int, default=2, help="judge calls at once")
    p.add_argument("--edit-concurrency", type=int, default=1, help="edits at once")
    add_max_backoff(p)
    p.add_argument(
        "--shard",
        default=_default_shard(),
        help="i/n: this process's share of the images (default: JOB_COMPLETION_INDEX/"
        "SAFETYPAIRS_SHARDS in a Kubernetes Indexed Job, else 0/1)",
    )
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=DEFAULT_LEASE_S,
        help="object store --out: how long the writer lease lasts unrenewed (a restarted "
        "writer waits at most this long for a killed one's lease)",
    )
    add_progress_flag(p)
    add_connection_flags(p)
    p.set_defaults(func=cmd_generate, extra="pairs")

    p = sub.add_parser("merge-datasets", help="merge shard datasets into one, without duplicates")
    p.add_argument("out", help="merged dataset folder or URL")
    p.add_argument("inputs", nargs="+", help="datasets to merge (folders or URLs)")
    p.set_defaults(func=cmd_merge_datasets, extra="pairs")

    p = sub.add_parser("report", help="write a dataset's HTML report (report.html) and print it")
    p.add_argument("dataset", help="pair dataset folder or URL")
    p.add_argument("--open", action="store_true", help="also open it in a web browser (a folder)")
    p.set_defaults(func=cmd_report, extra="pairs")

    p = sub.add_parser("export", help="export a pair dataset to Parquet or a datasets folder")
    p.add_argument("dataset", help="pair dataset folder or URL")
    p.add_argument("--to", choices=["parquet", "hf"], required=True, help="hf: save_to_disk")
    p.add_argument("--out", required=True, help="new .parquet file or folder (hf), or URL")
    p.add_argument("--include-rejected", action="store_true", help="also the rejected candidates")
    p.add_argument(
        "--reviewed",
        choices=["accepted", "any"],
        help="only pairs people accepted (see `review`), or only pairs someone reviewed",
    )
    p.set_defaults(func=cmd_export, extra="eval")

    p = sub.add_parser("import", help="make a pair dataset from an export (Parquet or hf)")
    p.add_argument("src", help="a .parquet file or a datasets save_to_disk folder")
    p.add_argument("--out", required=True, help="new pair dataset folder or URL")
    p.set_defaults(func=cmd_import, extra="eval")


def _default_shard() -> str:
    """In a Kubernetes Indexed Job each pod is one shard: its JOB_COMPLETION_INDEX of
    SAFETYPAIRS_SHARDS (the Job's `completions`)."""
    index = os.environ.get("JOB_COMPLETION_INDEX")
    if index is None:
        return "0/1"
    return f"{index}/{os.environ.get('SAFETYPAIRS_SHARDS', '')}"


def cmd_generate(args: argparse.Namespace) -> int:
    import asyncio

    from safetypairs.client.edit import AsyncEditClient
    from safetypairs.client.judge import AsyncJudgeClient
    from safetypairs.contract.policy import default_policy, load_policy
    from safetypairs.pairs.config import Progress
    from safetypairs.pairs.criteria import Criteria
    from safetypairs.pairs.explain import explain
    from safetypairs.pairs.pipeline import GenerationConfig, PairGenerator, summary
    from safetypairs.pairs.store import read_dataset

    given = [*args.images, *args.images_flag]
    if not given:
        return usage_error("name the source images: safetypairs generate IMAGES... --out DATASET")
    paths = list(image_paths(given))
    if not paths:
        return usage_error(f"no image files in {' '.join(given)}")
    try:
        shard = tuple(int(x) for x in args.shard.split("/"))
        assert len(shard) == 2 and 0 <= shard[0] < shard[1]
    except (ValueError, AssertionError):
        return usage_error(
            f"--shard {args.shard!r} must be i/n with 0 <= i < n (in an Indexed Job, set "
            "SAFETYPAIRS_SHARDS to the Job's completions)"
        )
    if args.lease_seconds <= 0:
        return usage_error("--lease-seconds must be positive")
    criteria = Criteria(args.threshold, args.margin, args.min_ssim, args.max_changed)
    config = GenerationConfig(
        policy=load_policy(args.policy) if args.policy else default_policy(),
        categories=tuple(codes(args.categories)),
        directions=tuple(codes(args.directions)),
        proposals=args.proposals,
        attempts=args.attempts,
        seed=args.seed,
        artifact_matched=not args.no_artifact_match,
        criteria=criteria,
        edit_steps=args.edit_steps,
        judge_concurrency=args.judge_concurrency,
        edit_concurrency=args.edit_concurrency,
        units_in_flight=args.judge_concurrency + args.edit_concurrency + 1,
        max_backoff_s=args.max_backoff,
        shard=shard,  # type: ignore[arg-type]
    )

    async def run(show: Callable[[Progress], None]) -> Progress:
        async with (
            connect(AsyncJudgeClient, args, args.judge_target) as judge,
            connect(AsyncEditClient, args, args.edit_target) as editor,
        ):
            generator = PairGenerator(judge, editor, args.out, config, show, args.lease_seconds)
            return await generator.run(paths)

    with counter("sources", "image") as report:
        progress = asyncio.run(run(lambda p: report(p.sources_done, p.sources_total, _counts(p))))
    result = {"dataset": args.out, **summary(progress)}
    # The dataset is read back only when this run accepted nothing (a resumed dataset may hold
    # earlier accepted pairs): an object store's read lists and fetches every segment.
    records = [] if progress.accepted else list(read_dataset(args.out).pairs())
    if not progress.accepted and not any(r.status == ACCEPTED for r in records):
        result["no_pairs"] = explain(records, criteria)
        _print_why(result["no_pairs"], progress.failed)
    print(json.dumps(result, indent=2))
    return 1 if progress.failed else 0


def _counts(progress: Any) -> str:
    return f"accepted {progress.accepted}, rejected {progress.rejected}, failed {progress.failed}"


def _print_why(why: dict[str, Any], failed: int) -> None:
    """Why the dataset holds no accepted pair, for a person (the JSON summary has it too)."""
    lines = ["no accepted pairs in the dataset; why:"]
    if failed:
        lines.append(f"  {failed} units failed: their errors are in failed.jsonl")
    for reason, count in why["rejections"].items():
        lines.append(f"  {reason}: {count}")
        miss = why["nearest_miss"].get(reason)
        if miss:
            lines.append(f"    {miss['advice']}")
    if not why["rejections"] and not failed:
        lines.append("  no source was rated (none falls in this --shard?)")
    print("\n".join(lines), file=sys.stderr)


def cmd_merge_datasets(args: argparse.Namespace) -> int:
    from safetypairs.pairs.merge import merge_datasets

    print(json.dumps(merge_datasets(args.out, args.inputs)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from safetypairs.pairs.report import write_report

    path = write_report(args.dataset)
    print(path)
    if args.open and isinstance(path, Path):
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from safetypairs.pairs.export import export_dataset

    result = export_dataset(
        args.dataset, args.out, args.to, args.include_rejected, reviewed=args.reviewed
    )
    print(json.dumps(result))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from safetypairs.pairs.export import import_dataset

    print(json.dumps(import_dataset(args.src, args.out)))
    return 0
