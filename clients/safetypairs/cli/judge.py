"""Judge commands: `judge rate` (verdicts against a policy) and `judge propose` (edit
instructions that would flip an image's rating)."""

from __future__ import annotations

import argparse
import dataclasses

from safetypairs.cli.common import (
    Subcommands,
    add_client_command,
    chunks,
    codes,
    connect,
    image_paths,
    judge_policy,
    print_json,
    result_json,
    usage_error,
    verdicts,
)
from safetypairs.client.judge import JudgeClient
from safetypairs.contract.results import Rated


def register(sub: Subcommands) -> None:
    judge = sub.add_parser("judge", help="rate images or propose edits with the judge service")
    judge_sub = judge.add_subparsers(dest="judge_command", required=True)

    def judge_command(name: str, help: str) -> argparse.ArgumentParser:
        p = add_client_command(judge_sub, name, help, "judge", 120.0)
        p.add_argument("--policy", default="", help="custom policy YAML file")
        p.add_argument("--policy-name", default="", help="a policy the server knows by name")
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    p = judge_command("rate", "rate image files or folders against a policy")
    p.add_argument("paths", nargs="+", help="image files, or folders searched for images")
    p.add_argument("--categories", default="", help="judge against these codes only, e.g. O1,O6")
    p.add_argument("--rationale", action="store_true", help="also generate a rationale")
    p.add_argument("--threshold", type=float, default=None, help="p(unsafe) deciding unsafe")
    p.add_argument("--batch-size", type=int, default=8, help="images per request")
    p.set_defaults(func=cmd_judge_rate)

    p = judge_command("propose", "propose edit instructions that flip an image's rating")
    p.add_argument("path", help="image file")
    p.add_argument("--direction", choices=["to_safe", "to_unsafe"], required=True)
    p.add_argument("--category", default="", help="target category (needed for to_unsafe)")
    p.add_argument("--count", type=int, default=4, help="how many proposals")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.set_defaults(func=cmd_judge_propose)


def cmd_judge_rate(args: argparse.Namespace) -> int:
    paths = list(image_paths(args.paths))
    missing = [p for p in paths if not p.is_file()]
    if missing or not paths:
        return usage_error(f"no such image file: {', '.join(map(str, missing)) or args.paths}")
    with connect(JudgeClient, args, timeout=args.timeout) as judge:
        info = judge.model_info()
        results: list[Rated] = []
        for chunk in chunks(paths, args.batch_size):
            results += judge.rate_batch(
                chunk,
                policy=judge_policy(args),
                categories=codes(args.categories) or None,
                rationale=args.rationale,
                threshold=args.threshold,
            )
    failed = 1 if any(r.error for r in results) else 0
    if args.json:
        print_json(
            {
                "model": dataclasses.asdict(info),
                "results": [result_json(r, prompt_version=r.prompt_version) for r in results],
            }
        )
        return failed
    if info.notice:
        print(f"NOTE: {info.notice}\n")
    for r in verdicts(results):
        v = r.verdict
        head = f"UNSAFE ({v.category})" if v.unsafe else "safe"
        print(f"{r.image_id}\n  {head}   p(unsafe)={v.probability:.3f}   {r.prompt_version}")
        top = sorted(v.scores, key=lambda s: -s.probability)[:3]
        print("  most likely: " + ", ".join(f"{s.category} {s.probability:.3f}" for s in top))
        if v.rationale:
            print(f"  rationale: {v.rationale}")
        print()
    return failed


def cmd_judge_propose(args: argparse.Namespace) -> int:
    with connect(JudgeClient, args, timeout=args.timeout) as judge:
        answer = judge.propose_edits(
            args.path,
            args.direction,
            category=args.category,
            count=args.count,
            seed=args.seed,
            policy=judge_policy(args),
        )
    if args.json:
        print_json(dataclasses.asdict(answer))
        return 0
    if answer.untrained:
        print(f"NOTE: {answer.model} is untrained: these proposals mean nothing.\n")
    for i, p in enumerate(answer.proposals, 1):
        print(f"{i}. [{p.action} {p.category}] {p.instruction}\n   element: {p.element}")
    return 0
