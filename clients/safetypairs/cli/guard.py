"""Guard commands: `screen` (the guard alone, or the guard-then-judge cascade), `categories`,
`model-info`, and `wait` (any service's health check)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import grpc

from safetypairs.cli.common import (
    Subcommands,
    add_client_command,
    add_connection_flags,
    chunks,
    codes,
    connect,
    credentials,
    error_json,
    image_paths,
    print_error,
    print_json,
    result_json,
    target,
    usage_error,
    verdicts,
)
from safetypairs.client.channel import NO_RETRY, ChannelOptions, open_channel
from safetypairs.client.guard import GuardClient
from safetypairs.client.judge import JudgeClient
from safetypairs.contract.errors import SafetyPairsError
from safetypairs.contract.results import ScreenResult

TARGET_HELP = (
    "guard gRPC address, e.g. localhost:50051 or dns:///guard:50051 (env SAFETYPAIRS_GUARD_TARGET)"
)


def register(sub: Subcommands) -> None:
    def guard_command(name: str, help: str) -> argparse.ArgumentParser:
        return add_client_command(sub, name, help, "guard", 30.0, TARGET_HELP)

    p = guard_command("screen", "screen image files or folders with the guard service")
    p.add_argument("paths", nargs="+", help="image files, or folders searched for images")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--categories", default="", help="comma-separated codes, e.g. O1,O6")
    p.add_argument("--batch-size", type=int, default=16, help="images per request")
    p.add_argument(
        "--judge-target",
        default=os.environ.get("SAFETYPAIRS_JUDGE_TARGET", ""),
        help="escalate uncertain images to this judge (the screening cascade; env "
        "SAFETYPAIRS_JUDGE_TARGET); empty = the guard alone",
    )
    p.add_argument("--band", default="0.2,0.8", help="uncertain band LOW,HIGH on guard scores")
    p.add_argument("--judge-timeout", type=float, default=5.0, help="most seconds the judge gets")
    p.add_argument("--rationale", action="store_true", help="ask the judge for a rationale")
    p.set_defaults(func=cmd_screen)

    p = sub.add_parser("wait", help="wait until a service's gRPC health check says SERVING")
    p.add_argument("--target", default=target("guard"), help="gRPC address")
    p.add_argument("--service", default="", help="health service name; empty = the server")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    add_connection_flags(p)
    p.set_defaults(func=cmd_wait)

    guard_command("categories", "list the guard's categories").set_defaults(func=cmd_categories)
    guard_command("model-info", "show the guard's model").set_defaults(func=cmd_model_info)


def cmd_screen(args: argparse.Namespace) -> int:
    paths = list(image_paths(args.paths))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        return usage_error(f"no such file: {', '.join(map(str, missing))}")
    if not paths:
        return usage_error("no image files found")
    if args.judge_target:
        return _screen_cascade(args, paths)
    categories = codes(args.categories) or None
    with connect(GuardClient, args, timeout=args.timeout) as guard:
        info = guard.model_info()
        names = {c.code: c.name for c in guard.list_categories()}
        size = min(args.batch_size, info.max_images_per_request or args.batch_size)
        results: list[ScreenResult] = []
        for chunk in chunks(paths, size):
            results += guard.screen_batch(chunk, categories=categories)
    if args.json:
        model = {k: getattr(info, k) for k in ("name", "version", "untrained", "notice")}
        print_json(
            {
                "model": model,
                "results": [result_json(r) for r in results],
            }
        )
    else:
        if info.notice or info.untrained:
            print(f"NOTE: {info.notice or 'the model is untrained; its scores mean nothing.'}\n")
        _print_table(results, names)
    return 1 if any(r.error for r in results) else 0


def _print_table(results: list[ScreenResult], names: dict[str, str]) -> None:
    width = max((len(f"{c} {n}") for c, n in names.items()), default=20)
    for r in verdicts(results):
        v = r.verdict
        head = f"UNSAFE ({v.category} {names.get(v.category, '')})" if v.unsafe else "safe"
        model = f"{v.model} (UNTRAINED)" if v.untrained else v.model
        print(f"{r.image_id}\n  {head}   max p={v.probability:.3f}   model {model}")
        print(f"  {'category':<{width}}  probability  threshold  decision")
        for s in v.scores:
            label = f"{s.category} {names.get(s.category, '')}"
            if s.not_covered:
                print(f"  {label:<{width}}  {'-':>11}  {'-':>9}  not covered")
                continue
            decision = "FLAGGED" if s.flagged else "ok"
            print(f"  {label:<{width}}  {s.probability:>11.3f}  {s.threshold:>9.2f}  {decision}")
        print()


def _screen_cascade(args: argparse.Namespace, paths: list[Path]) -> int:
    """Guard first, the judge for images the guard is unsure of (see safetypairs.screening)."""
    from safetypairs.screening import CascadeConfig, Screener

    try:
        low, high = (float(x) for x in args.band.split(","))
    except ValueError:
        return usage_error(f"--band {args.band!r} must be LOW,HIGH (e.g. 0.2,0.8)")
    config = CascadeConfig(
        band=(low, high),
        deadline_s=args.timeout,
        judge_timeout_s=args.judge_timeout,
        categories=tuple(codes(args.categories)),
        judge_rationale=args.rationale,
    )
    guard = connect(GuardClient, args, timeout=args.timeout)
    with Screener(guard, connect(JudgeClient, args, args.judge_target), config) as screener:
        outcomes = screener.screen_many([str(p) for p in paths])
    failed = False
    records = []
    for path, d in zip(paths, outcomes, strict=True):
        if isinstance(d, SafetyPairsError):
            failed = True
            records.append({"image": str(path), "error": error_json(d)})
            if not args.json:
                print_error(str(path), d)
            continue
        records.append(dataclasses.asdict(d))
        if not args.json:
            head = f"UNSAFE ({d.category})" if d.unsafe else "safe"
            steps = f"guard {d.guard_ms:.1f} ms" + (
                f", judge {d.judge_ms:.1f} ms" if d.escalated else ""
            )
            print(f"{d.image_id}\n  {head}   decided by {d.decided_by}   ({steps})")
            print(f"  {d.reason}\n")
    if args.json:
        print_json({"band": [low, high], "decisions": records})
    return 1 if failed else 0


def cmd_wait(args: argparse.Namespace) -> int:
    """Poll grpc.health.v1 until the service reports SERVING (for scripts and init containers)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + args.timeout
    options = ChannelOptions(retry=NO_RETRY)
    with open_channel(args.target, [], options, credentials=credentials(args)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return 0
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                print(f"error: {args.target} not SERVING after {args.timeout}s", file=sys.stderr)
                return 1
            time.sleep(0.5)


def cmd_categories(args: argparse.Namespace) -> int:
    with connect(GuardClient, args, timeout=args.timeout) as guard:
        for c in guard.list_categories():
            print(f"{c.code}  {c.name}")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    with connect(GuardClient, args, timeout=args.timeout) as guard:
        print_json(dataclasses.asdict(guard.model_info()))
    return 0
