"""The `safetypairs` command line.

    safetypairs serve guard [--http-port 3000] [--grpc-port 50051] [--guard-model REF] ...
    safetypairs screen PATH... [--target HOST:PORT] [--json]
    safetypairs categories | model-info [--target HOST:PORT]
    safetypairs build-default-guard [--home DIR]
    safetypairs serve judge [--http-port 3001] [--grpc-port 50052] [--judge-model REF] ...
    safetypairs judge rate PATH... [--policy FILE] [--rationale] [--json]
    safetypairs judge propose PATH --direction to_unsafe --category O6 [--count 4]
    safetypairs serve edit [--http-port 3002] [--grpc-port 50053] [--edit-model REF] ...
    safetypairs edit IMAGE --instruction TEXT --out FILE [--seed N] [--region x,y,w,h]
    safetypairs build-default-editor [--home DIR]
    safetypairs evaluate --data PATH [--pairs PATH] (--guard REF | --guard-target HOST:PORT |
                         --judge-target HOST:PORT) --out DIR
    safetypairs sample-efficiency --data PATH --pairs PATH --sizes 8,16,32 --out DIR
    safetypairs confound-check --pairs PATH --out DIR
    safetypairs report DATASET [--open]
    safetypairs export DATASET --to parquet|hf --out PATH [--include-rejected]
    safetypairs import SRC --out DATASET

Client commands need only the SDK; `serve` and `build-default-guard` need the serving and
model extras and import them when run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from safetypairs.client.channel import NO_RETRY, ChannelOptions, open_channel, tls_credentials
from safetypairs.client.edit import EditClient, EditProgress, EditResult
from safetypairs.client.guard import GuardClient
from safetypairs.client.judge import JudgeClient
from safetypairs.contract.errors import InvalidInput, SafetyPairsError
from safetypairs.contract.policy import Policy, load_policy
from safetypairs.contract.results import Rated, ScreenResult

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
DEFAULT_TARGET = os.environ.get("SAFETYPAIRS_GUARD_TARGET", "localhost:50051")
JUDGE_TARGET = os.environ.get("SAFETYPAIRS_JUDGE_TARGET", "localhost:50052")
EDIT_TARGET = os.environ.get("SAFETYPAIRS_EDIT_TARGET", "localhost:50053")


def _image_paths(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def _credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials from the connection flags; None for a plaintext channel."""
    if args.tls_ca or args.tls_cert:
        return tls_credentials(args.tls_ca, args.tls_cert, args.tls_key)
    return None


def _client(args: argparse.Namespace) -> GuardClient:
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    return GuardClient(
        args.target, timeout=args.timeout, token=token, credentials=_credentials(args)
    )


def _chunks(items: list[Path], size: int) -> Iterator[list[Path]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _print_table(results: list[ScreenResult], names: dict[str, str]) -> None:
    width = max((len(f"{c} {n}") for c, n in names.items()), default=20)
    for r in results:
        if r.error is not None:
            print(f"{r.image_id}\n  ERROR {r.error.kind}: {r.error.message}\n")
            continue
        v = r.verdict
        assert v is not None
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


def cmd_screen(args: argparse.Namespace) -> int:
    paths = list(_image_paths(args.paths))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    if not paths:
        print("error: no image files found", file=sys.stderr)
        return 2
    categories = [c.strip() for c in args.categories.split(",") if c.strip()] or None
    if args.judge_target:
        return _screen_cascade(args, paths, categories)
    with _client(args) as guard:
        info = guard.model_info()
        names = {c.code: c.name for c in guard.list_categories()}
        size = min(args.batch_size, info.max_images_per_request or args.batch_size)
        results: list[ScreenResult] = []
        for chunk in _chunks(paths, size):
            results += guard.screen_batch(chunk, categories=categories)
    if args.json:
        out = {
            "model": {
                "name": info.name,
                "version": info.version,
                "untrained": info.untrained,
                "notice": info.notice,
            },
            "results": [
                {
                    "image": r.image_id,
                    "verdict": dataclasses.asdict(r.verdict) if r.verdict else None,
                    "error": {"kind": r.error.kind, "message": r.error.message}
                    if r.error
                    else None,
                }
                for r in results
            ],
        }
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        if info.notice or info.untrained:
            print(f"NOTE: {info.notice or 'the model is untrained; its scores mean nothing.'}\n")
        _print_table(results, names)
    return 1 if any(r.error for r in results) else 0


def _screen_cascade(args: argparse.Namespace, paths: list[Path], categories) -> int:
    """Guard first, the judge for images the guard is unsure of (see safetypairs.screening)."""
    from safetypairs.screening import CascadeConfig, Screener

    try:
        low, high = (float(x) for x in args.band.split(","))
    except ValueError:
        print(f"error: --band {args.band!r} must be LOW,HIGH (e.g. 0.2,0.8)", file=sys.stderr)
        return 2
    config = CascadeConfig(
        band=(low, high),
        deadline_s=args.timeout,
        judge_timeout_s=args.judge_timeout,
        categories=tuple(categories or ()),
        judge_rationale=args.rationale,
    )
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    judge = JudgeClient(args.judge_target, token=token, credentials=_credentials(args))
    with Screener(_client(args), judge, config) as screener:
        outcomes = screener.screen_many([str(p) for p in paths])
    failed = False
    records = []
    for path, d in zip(paths, outcomes, strict=True):
        if isinstance(d, SafetyPairsError):
            failed = True
            records.append({"image": str(path), "error": {"kind": d.kind, "message": d.message}})
            if not args.json:
                print(f"{path}\n  ERROR {d.kind}: {d.message}\n")
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
        json.dump({"band": [low, high], "decisions": records}, sys.stdout, indent=2)
        print()
    return 1 if failed else 0


def cmd_wait(args: argparse.Namespace) -> int:
    """Poll grpc.health.v1 until the service reports SERVING (for scripts and init containers)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + args.timeout
    options = ChannelOptions(retry=NO_RETRY)
    with open_channel(args.target, [], options, credentials=_credentials(args)) as channel:
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
    with _client(args) as guard:
        for c in guard.list_categories():
            print(f"{c.code}  {c.name}")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    with _client(args) as guard:
        json.dump(dataclasses.asdict(guard.model_info()), sys.stdout, indent=2)
        print()
    return 0


def cmd_build_default_guard(args: argparse.Namespace) -> int:
    from safetypairs.guard.default_model import default_guard_dir, ensure_default_guard
    from safetypairs.serving.settings import GuardSettings

    home = args.home or GuardSettings.from_env().home_dir()
    if args.force:
        import shutil

        shutil.rmtree(default_guard_dir(home), ignore_errors=True)
    print(ensure_default_guard(home))
    return 0


def _judge_client(args: argparse.Namespace) -> JudgeClient:
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    return JudgeClient(
        args.target, timeout=args.timeout, token=token, credentials=_credentials(args)
    )


def _judge_policy(args: argparse.Namespace) -> Policy | str | None:
    if args.policy:
        return load_policy(args.policy)
    return args.policy_name or None


def cmd_judge_rate(args: argparse.Namespace) -> int:
    paths = list(_image_paths(args.paths))
    missing = [p for p in paths if not p.is_file()]
    if missing or not paths:
        print(
            f"error: no such image file: {', '.join(map(str, missing)) or args.paths}",
            file=sys.stderr,
        )
        return 2
    categories = [c.strip() for c in args.categories.split(",") if c.strip()] or None
    with _judge_client(args) as judge:
        info = judge.model_info()
        results: list[Rated] = []
        for chunk in _chunks(paths, args.batch_size):
            results += judge.rate_batch(
                chunk,
                policy=_judge_policy(args),
                categories=categories,
                rationale=args.rationale,
                threshold=args.threshold,
            )
    if args.json:
        json.dump(
            {
                "model": dataclasses.asdict(info),
                "results": [
                    {
                        "image": r.image_id,
                        "prompt_version": r.prompt_version,
                        "verdict": dataclasses.asdict(r.verdict) if r.verdict else None,
                        "error": {"kind": r.error.kind, "message": r.error.message}
                        if r.error
                        else None,
                    }
                    for r in results
                ],
            },
            sys.stdout,
            indent=2,
        )
        print()
        return 1 if any(r.error for r in results) else 0
    if info.notice:
        print(f"NOTE: {info.notice}\n")
    for r in results:
        if r.error is not None:
            print(f"{r.image_id}\n  ERROR {r.error.kind}: {r.error.message}\n")
            continue
        v = r.verdict
        assert v is not None
        head = f"UNSAFE ({v.category})" if v.unsafe else "safe"
        print(f"{r.image_id}\n  {head}   p(unsafe)={v.probability:.3f}   {r.prompt_version}")
        top = sorted(v.scores, key=lambda s: -s.probability)[:3]
        print("  most likely: " + ", ".join(f"{s.category} {s.probability:.3f}" for s in top))
        if v.rationale:
            print(f"  rationale: {v.rationale}")
        print()
    return 1 if any(r.error for r in results) else 0


def cmd_judge_propose(args: argparse.Namespace) -> int:
    with _judge_client(args) as judge:
        answer = judge.propose_edits(
            args.path,
            args.direction,
            category=args.category,
            count=args.count,
            seed=args.seed,
            policy=_judge_policy(args),
        )
    if args.json:
        json.dump(dataclasses.asdict(answer), sys.stdout, indent=2)
        print()
        return 0
    if answer.untrained:
        print(f"NOTE: {answer.model} is untrained: these proposals mean nothing.\n")
    for i, p in enumerate(answer.proposals, 1):
        print(f"{i}. [{p.action} {p.category}] {p.instruction}\n   element: {p.element}")
    return 0


def cmd_build_default_judge(args: argparse.Namespace) -> int:
    from safetypairs.judge.default_model import default_judge_dir, ensure_default_judge
    from safetypairs.serving.settings import JudgeSettings

    home = args.home or JudgeSettings.from_env().home_dir()
    if args.force:
        import shutil

        shutil.rmtree(default_judge_dir(home), ignore_errors=True)
    print(ensure_default_judge(home))
    return 0


def _progress_bar(p: EditProgress) -> None:
    width = 30
    done = width * p.step // p.total if p.total else 0
    bar = "#" * done + "." * (width - done)
    print(f"\r[{bar}] step {p.step}/{p.total} {p.elapsed_s:6.1f}s", end="", file=sys.stderr)
    sys.stderr.flush()


def _edit_summary(result: EditResult, out: Path) -> dict[str, Any]:
    summary = dataclasses.asdict(result)
    del summary["image"]
    summary["change"].pop("map_png")
    return {"out": str(out), **summary}


def cmd_edit(args: argparse.Namespace) -> int:
    image, out = Path(args.image), Path(args.out)
    if not image.is_file():
        print(f"error: no such image file: {image}", file=sys.stderr)
        return 2
    region = None
    if args.region:
        try:
            x, y, w, h = (int(v) for v in args.region.split(","))
        except ValueError:
            print(f"error: --region {args.region!r} must be x,y,width,height", file=sys.stderr)
            return 2
        region = (x, y, w, h)
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    fmt = args.format or ("webp" if out.suffix.lower() == ".webp" else "png")
    with EditClient(
        args.target, timeout=args.timeout, token=token, credentials=_credentials(args)
    ) as editor:
        try:
            result = editor.edit(
                image,
                args.instruction,
                seed=args.seed,
                mask=args.mask,
                region=region,
                steps=args.steps,
                guidance_scale=args.guidance_scale,
                image_guidance_scale=args.image_guidance_scale,
                negative_prompt=args.negative_prompt,
                format=fmt,
                on_progress=None if args.no_progress else _progress_bar,
            )
        finally:
            if not args.no_progress:
                print(file=sys.stderr)
    result.save(out)
    if args.change_map:
        Path(args.change_map).write_bytes(result.change.map_png)
    if args.json:
        json.dump(_edit_summary(result, out), sys.stdout, indent=2)
        print()
        return 0
    if result.untrained:
        print(f"NOTE: {result.model} is untrained: the output is no edit of anything.")
    bbox = result.change.bbox
    where = f"inside x={bbox.x} y={bbox.y} {bbox.width}x{bbox.height}" if bbox else "nowhere"
    print(
        f"wrote {out} ({result.width}x{result.height}, seed {result.seed}, {result.steps} steps, "
        f"{result.model}, {result.seconds:.2f}s); changed {result.change.changed_fraction:.1%} "
        f"of the pixels, {where}"
    )
    return 0


def cmd_build_default_editor(args: argparse.Namespace) -> int:
    from safetypairs.edit.default_model import default_editor_dir, ensure_default_editor
    from safetypairs.serving.settings import EditSettings

    home = args.home or EditSettings.from_env().home_dir()
    if args.force:
        import shutil

        shutil.rmtree(default_editor_dir(home), ignore_errors=True)
    print(ensure_default_editor(home))
    return 0


def _generation_progress(progress: Any) -> None:
    """One line on stderr, redrawn: sources done, pairs accepted, rate and ETA."""
    done, total = progress.sources_done, progress.sources_total
    elapsed = time.monotonic() - progress.started
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = f"{(total - done) / rate:.0f}s" if rate > 0 and done < total else "-"
    filled = int(30 * done / total) if total else 30
    print(
        f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} images  "
        f"accepted {progress.accepted}  rejected {progress.rejected}  failed {progress.failed}  "
        f"{rate:.2f} img/s  ETA {eta}  ",
        end="",
        file=sys.stderr,
        flush=True,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    import asyncio

    from safetypairs.client.edit import AsyncEditClient
    from safetypairs.client.judge import AsyncJudgeClient
    from safetypairs.contract.policy import default_policy
    from safetypairs.pairs.criteria import Criteria
    from safetypairs.pairs.pipeline import GenerationConfig, PairGenerator, summary

    paths = list(_image_paths([args.images]))
    if not paths:
        print(f"error: no image files in {args.images}", file=sys.stderr)
        return 2
    try:
        shard = tuple(int(x) for x in args.shard.split("/"))
        assert len(shard) == 2 and 0 <= shard[0] < shard[1]
    except (ValueError, AssertionError):
        print(f"error: --shard {args.shard!r} must be i/n with 0 <= i < n", file=sys.stderr)
        return 2
    config = GenerationConfig(
        policy=load_policy(args.policy) if args.policy else default_policy(),
        categories=tuple(c.strip() for c in args.categories.split(",") if c.strip()),
        directions=tuple(d.strip() for d in args.directions.split(",") if d.strip()),
        proposals=args.proposals,
        attempts=args.attempts,
        seed=args.seed,
        artifact_matched=not args.no_artifact_match,
        criteria=Criteria(args.threshold, args.margin, args.min_ssim, args.max_changed),
        edit_steps=args.edit_steps,
        judge_concurrency=args.judge_concurrency,
        edit_concurrency=args.edit_concurrency,
        units_in_flight=args.judge_concurrency + args.edit_concurrency + 1,
        max_backoff_s=args.max_backoff,
        shard=shard,  # type: ignore[arg-type]
    )

    async def run() -> Any:
        token = Path(args.token_file).read_text().strip() if args.token_file else None
        creds = _credentials(args)
        async with (
            AsyncJudgeClient(args.judge_target, token=token, credentials=creds) as judge,
            AsyncEditClient(args.edit_target, token=token, credentials=creds) as editor,
        ):
            bar = None if args.quiet else _generation_progress
            return await PairGenerator(judge, editor, args.out, config, bar).run(paths)

    progress = asyncio.run(run())
    if not args.quiet:
        print(file=sys.stderr)
    print(json.dumps({"dataset": args.out, **summary(progress)}, indent=2))
    return 1 if progress.failed else 0


def cmd_merge_datasets(args: argparse.Namespace) -> int:
    from safetypairs.pairs.merge import merge_datasets

    print(json.dumps(merge_datasets(args.out, args.inputs)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from safetypairs.pairs.report import write_report

    path = write_report(args.dataset)
    print(path)
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from safetypairs.pairs.export import export_dataset

    summary = export_dataset(args.dataset, args.out, args.to, args.include_rejected)
    print(json.dumps(summary))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from safetypairs.pairs.export import import_dataset

    print(json.dumps(import_dataset(args.src, args.out)))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from safetypairs.evaluation.commands import evaluate

    chosen = [x for x in (args.guard, args.guard_target, args.judge_target) if x]
    if len(chosen) != 1:
        raise InvalidInput("give exactly one of --guard, --guard-target, --judge-target")
    if not args.data and not args.pairs:
        raise InvalidInput("give --data and/or --pairs")
    client: GuardClient | JudgeClient | None = None
    if args.guard_target:
        args.target = args.guard_target
        client = _client(args)
    elif args.judge_target:
        args.target = args.judge_target
        client = _judge_client(args)
    return evaluate(args, client, _judge_policy(args))


def cmd_sample_efficiency(args: argparse.Namespace) -> int:
    from safetypairs.evaluation.commands import sample_efficiency

    return sample_efficiency(args)


def cmd_confound_check(args: argparse.Namespace) -> int:
    from safetypairs.evaluation.commands import confound_check

    return confound_check(args)


def cmd_train_guard(args: argparse.Namespace) -> int:
    from safetypairs.training.train import TrainConfig, train_guard

    config = TrainConfig(
        encoder=args.encoder,
        out=Path(args.out),
        data=[Path(p) for p in args.data],
        pairs=[Path(p) for p in args.pairs],
        categories=[c.strip() for c in args.categories.split(",") if c.strip()],
        head=args.head,
        margin=args.margin,
        val_fraction=args.val_fraction,
        seed=args.seed,
        target=args.target,
        cache=Path(args.cache) if args.cache else None,
        name=args.name,
        version=args.version,
    )
    result = train_guard(config)
    sc = result.sidecar
    print(
        f"wrote {result.onnx_path} ({sc.name}:{sc.version}; embedded {result.embedded} images, "
        f"{result.cached} from the cache)"
    )
    for code, figures in sc.extra["training"]["calibration"].items():
        shown = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()
        )
        print(f"  {code}: threshold {sc.thresholds[code]:.3f}  ({shown})")
    return 0


def cmd_guard_variant(args: argparse.Namespace) -> int:
    from safetypairs.contract.images import ImageLimits, decode_image
    from safetypairs.guard.artifact import guard_artifact_path
    from safetypairs.guard.engine import GuardEngine
    from safetypairs.guard.quantize import decision_agreement, make_variant

    source = guard_artifact_path(args.path)
    fp32 = GuardEngine.load(source)
    limits = ImageLimits(64 * 1024 * 1024, 100_000_000)
    arrays = []
    for path in _image_paths(args.images):
        try:
            arrays.append(fp32.preprocess(decode_image(path.read_bytes(), limits)))
        except SafetyPairsError as exc:
            print(f"skipping {path}: {exc.message}", file=sys.stderr)
    if len(arrays) < 2:
        print("error: give at least two images (--images)", file=sys.stderr)
        return 2
    # Calibrate on the first half, measure agreement on the other half.
    half = len(arrays) // 2
    calibration, held_out = arrays[:half], arrays[half:]
    out = Path(args.out) / source.name
    card = make_variant(source, out, args.variant, calibration)
    agreement = decision_agreement(fp32, GuardEngine.load(out), held_out)
    print(
        f"wrote {out} ({card.name}); on {agreement.images} held-out images: decisions agree "
        f"{agreement.decisions_agree:.1%}, max |probability diff| {agreement.max_abs_diff:.4f}"
    )
    return 0


def cmd_register_guard(args: argparse.Namespace) -> int:
    from safetypairs.guard.registry import register_guard

    print(register_guard(args.path, args.name))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from safetypairs.serving.serve import serve

    serve(args.service, args.host, args.http_port, vars(args))


def _add_setting_flags(parser: argparse.ArgumentParser, settings_class: type) -> None:
    """One flag per service setting, same name as its SAFETYPAIRS_* env var."""
    from safetypairs.serving.settings import env_name, flag_name

    types = {"int": int, "float": float, "str": str}
    for f in dataclasses.fields(settings_class):
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        parser.add_argument(
            flag_name(f.name),
            dest=f.name,
            type=types.get(kind, str),
            default=None,
            help=f"{f.metadata.get('help', '')} (env {env_name(f.name)}, default {f.default!r})",
        )


def _add_max_backoff(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-backoff",
        type=float,
        default=120.0,
        help="seconds an overloaded or absent (restarting) service is waited for, per call",
    )


def _add_connection_flags(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument(
        "--token-file",
        default=env("SAFETYPAIRS_TOKEN_FILE"),
        help="file holding the bearer token (env SAFETYPAIRS_TOKEN_FILE)",
    )
    p.add_argument(
        "--tls-ca",
        default=env("SAFETYPAIRS_TLS_CA"),
        help="PEM CA of the server, for TLS (env SAFETYPAIRS_TLS_CA)",
    )
    p.add_argument(
        "--tls-cert",
        default=env("SAFETYPAIRS_TLS_CLIENT_CERT"),
        help="PEM client certificate, for mutual TLS",
    )
    p.add_argument(
        "--tls-key",
        default=env("SAFETYPAIRS_TLS_CLIENT_KEY"),
        help="PEM client key, for mutual TLS",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safetypairs", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def client_command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument(
            "--target",
            default=DEFAULT_TARGET,
            help="guard gRPC address, e.g. localhost:50051 or dns:///guard:50051 "
            "(env SAFETYPAIRS_GUARD_TARGET)",
        )
        p.add_argument("--timeout", type=float, default=30.0, help="deadline per call, seconds")
        _add_connection_flags(p)
        return p

    p = client_command("screen", "screen image files or folders with the guard service")
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
    p.add_argument("--target", default=DEFAULT_TARGET, help="gRPC address")
    p.add_argument("--service", default="", help="health service name; empty = the server")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    _add_connection_flags(p)
    p.set_defaults(func=cmd_wait)

    client_command("categories", "list the guard's categories").set_defaults(func=cmd_categories)
    client_command("model-info", "show the guard's model").set_defaults(func=cmd_model_info)

    judge = sub.add_parser("judge", help="rate images or propose edits with the judge service")
    judge_sub = judge.add_subparsers(dest="judge_command", required=True)

    def judge_command(name: str, help: str) -> argparse.ArgumentParser:
        p = judge_sub.add_parser(name, help=help)
        p.add_argument(
            "--target",
            default=JUDGE_TARGET,
            help="judge gRPC address (env SAFETYPAIRS_JUDGE_TARGET)",
        )
        p.add_argument("--timeout", type=float, default=120.0, help="deadline per call, seconds")
        p.add_argument("--policy", default="", help="custom policy YAML file")
        p.add_argument("--policy-name", default="", help="a policy the server knows by name")
        p.add_argument("--json", action="store_true", help="print JSON")
        _add_connection_flags(p)
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

    p = sub.add_parser("generate", help="generate verified counterfactual pairs into a dataset")
    p.add_argument("--images", required=True, help="folder (or file) of source images")
    p.add_argument("--out", required=True, help="dataset folder; an existing one is resumed")
    p.add_argument("--policy", default="", help="policy YAML; default: the built-in O1..O9")
    p.add_argument("--categories", default="", help="codes to make pairs for; default: all")
    p.add_argument("--directions", default="to_safe,to_unsafe", help="to_safe and/or to_unsafe")
    p.add_argument("--judge-target", default=JUDGE_TARGET, help="judge gRPC address")
    p.add_argument(
        "--edit-target",
        default=os.environ.get("SAFETYPAIRS_EDIT_TARGET", "localhost:50053"),
        help="edit gRPC address (env SAFETYPAIRS_EDIT_TARGET)",
    )
    p.add_argument("--proposals", type=int, default=3, help="instructions per attempt")
    p.add_argument("--attempts", type=int, default=2, help="attempts per image and category")
    p.add_argument("--seed", type=int, default=0)
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
    p.add_argument("--judge-concurrency", type=int, default=2)
    p.add_argument("--edit-concurrency", type=int, default=1)
    _add_max_backoff(p)
    p.add_argument("--shard", default="0/1", help="i/n: this process's share of the images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_connection_flags(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("merge-datasets", help="merge shard datasets into one, without duplicates")
    p.add_argument("out", help="merged dataset folder")
    p.add_argument("inputs", nargs="+", help="datasets to merge")
    p.set_defaults(func=cmd_merge_datasets)

    p = sub.add_parser("report", help="write a dataset's HTML report (report.html) and print it")
    p.add_argument("dataset", help="pair dataset folder")
    p.add_argument("--open", action="store_true", help="also open it in a web browser")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="export a pair dataset to Parquet or a datasets folder")
    p.add_argument("dataset", help="pair dataset folder")
    p.add_argument("--to", choices=["parquet", "hf"], required=True, help="hf: save_to_disk")
    p.add_argument("--out", required=True, help="new .parquet file (parquet) or folder (hf)")
    p.add_argument("--include-rejected", action="store_true", help="also the rejected candidates")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="make a pair dataset from an export (Parquet or hf)")
    p.add_argument("src", help="a .parquet file or a datasets save_to_disk folder")
    p.add_argument("--out", required=True, help="new pair dataset folder")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("build-default-judge", help="build the embedded default (tiny) judge")
    p.add_argument("--home", default=None, help="cache folder (env SAFETYPAIRS_HOME)")
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    p.set_defaults(func=cmd_build_default_judge)

    p = sub.add_parser("edit", help="apply one instruction edit to an image (edit service)")
    p.add_argument("image", help="image file")
    p.add_argument("--instruction", required=True, help="what to change, e.g. 'remove the knife'")
    p.add_argument("--out", required=True, help="file to write the edited image to (.png, .webp)")
    p.add_argument(
        "--target", default=EDIT_TARGET, help="edit gRPC address (env SAFETYPAIRS_EDIT_TARGET)"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="deadline, seconds")
    p.add_argument("--seed", type=int, default=None, help="same seed, same output; default: random")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (server default)")
    p.add_argument("--guidance-scale", type=float, default=None)
    p.add_argument("--image-guidance-scale", type=float, default=None, help="InstructPix2Pix only")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--mask", default=None, help="image of the source's size; white = may change")
    p.add_argument("--region", default="", help="x,y,width,height: only this rectangle may change")
    p.add_argument("--format", choices=["png", "webp"], default=None, help="default: from --out")
    p.add_argument("--change-map", default=None, help="also write the change map PNG here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print the result's fields as JSON")
    _add_connection_flags(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("build-default-editor", help="build the embedded default (tiny) editor")
    p.add_argument("--home", default=None, help="cache folder (env SAFETYPAIRS_HOME)")
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    p.set_defaults(func=cmd_build_default_editor)

    p = sub.add_parser("build-default-guard", help="build the embedded default guard model")
    p.add_argument("--home", default=None, help="cache folder (env SAFETYPAIRS_HOME)")
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    p.set_defaults(func=cmd_build_default_guard)

    p = sub.add_parser("train-guard", help="train a guard head on a frozen encoder and export it")
    p.add_argument(
        "--encoder",
        default="efficientnet-lite0",
        help="efficientnet-lite0, or a Hugging Face id / local dir / BentoML tag of a "
        "CLIP, SigLIP or other vision model with pooled output",
    )
    p.add_argument("--data", action="append", default=[], help="labelled JSONL or folder (repeat)")
    p.add_argument("--pairs", action="append", default=[], help="pair dataset pairs.jsonl (repeat)")
    p.add_argument("--out", required=True, help="folder to write guard.onnx + guard.json into")
    p.add_argument("--categories", default="", help="codes to train; default: all with examples")
    p.add_argument("--head", choices=["linear", "mlp"], default="linear")
    p.add_argument("--margin", type=float, default=0.0, help="pairwise margin in logits; 0 = off")
    p.add_argument("--val-fraction", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", default="f1", help="threshold calibration: f1 or precision:P")
    p.add_argument("--cache", default=None, help="embedding cache folder (default: beside --out)")
    p.add_argument("--name", default="trained-guard")
    p.add_argument("--version", default="1")
    p.set_defaults(func=cmd_train_guard)

    p = sub.add_parser("guard-variant", help="write an int8 or fp16 copy of a guard")
    p.add_argument("path", help="a guard .onnx with its sidecar, or its folder")
    p.add_argument("--variant", choices=["int8-static", "int8-dynamic", "fp16"], required=True)
    p.add_argument(
        "--images",
        nargs="+",
        required=True,
        help="real images: the first half calibrates, the second half checks agreement",
    )
    p.add_argument("--out", required=True, help="folder for the copy")
    p.set_defaults(func=cmd_guard_variant)

    p = sub.add_parser(
        "register-guard", help="copy a guard into the BentoML model store under a version tag"
    )
    p.add_argument("path", help="a guard: .onnx with sidecar, ensemble manifest, or their folder")
    p.add_argument("--name", default="safetypairs-guard", help="store name (default %(default)s)")
    p.set_defaults(func=cmd_register_guard)

    def data_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--unsafe-category",
            default="",
            help="the category code binary labels (unsafe/1/true) mean, e.g. O6",
        )
        p.add_argument("--split", default="", help="split of a Hugging Face DatasetDict")

    p = sub.add_parser(
        "evaluate", help="score a guard or judge on labelled images and pairs: metrics + plots"
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        help="labelled images: JSONL/CSV table, folder, or Hugging Face save_to_disk (repeat)",
    )
    p.add_argument(
        "--pairs", action="append", default=[], help="pair dataset pairs.jsonl or folder (repeat)"
    )
    p.add_argument("--guard", default="", help="guard artifact (.onnx, ensemble, folder), run here")
    p.add_argument("--guard-target", default="", help="running guard service, HOST:PORT")
    p.add_argument("--judge-target", default="", help="running judge service, HOST:PORT")
    p.add_argument("--out", required=True, help="folder for results.json, scores and PNGs")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--threshold", type=float, default=None, help="judge: P(unsafe) for unsafe")
    p.add_argument("--policy", default="", help="judge: custom policy YAML file")
    p.add_argument("--policy-name", default="", help="judge: a policy the server knows by name")
    p.add_argument("--timeout", type=float, default=120.0, help="deadline per call, seconds")
    _add_max_backoff(p)
    data_flags(p)
    _add_connection_flags(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "sample-efficiency",
        help="train guards on growing subsets with and without pairs, plot metric vs size",
    )
    p.add_argument("--data", action="append", default=[], help="labelled pool (repeat)")
    p.add_argument("--pairs", action="append", default=[], help="pair pool (repeat)")
    p.add_argument("--out", required=True, help="folder for the runs, JSON and PNG")
    p.add_argument("--sizes", default="8,16,32", help="training images per run, e.g. 8,16,32")
    p.add_argument("--seeds", default="0,1,2", help="seeds, e.g. 0,1,2")
    p.add_argument("--test", action="append", default=[], help="test set; default: split off")
    p.add_argument("--test-fraction", type=float, default=0.3, help="held out when no --test")
    p.add_argument("--pair-fraction", type=float, default=0.5, help="share of images as pairs")
    p.add_argument("--margin", type=float, default=1.0, help="pairwise margin, with pairs")
    p.add_argument("--metric", choices=["f1", "accuracy", "pair_accuracy", "roc_auc"], default="f1")
    p.add_argument("--encoder", default="efficientnet-lite0", help="frozen encoder reference")
    p.add_argument("--categories", default="", help="codes to train; default: all with both")
    p.add_argument("--epochs", type=int, default=300, help="most epochs per head")
    p.add_argument("--cache", default=None, help="embedding cache folder (default: in --out)")
    data_flags(p)
    p.set_defaults(func=cmd_sample_efficiency)

    p = sub.add_parser(
        "confound-check", help="does a pair dataset leak which image was edited? (linear probe)"
    )
    p.add_argument("--pairs", action="append", required=True, help="pair dataset (repeat)")
    p.add_argument("--out", required=True, help="folder for confound.json and confound.png")
    p.add_argument("--encoder", default="efficientnet-lite0", help="frozen encoder reference")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds over pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--level", type=float, default=0.95, help="confidence level")
    p.add_argument("--cache", default=None, help="embedding cache folder (default: in --out)")
    data_flags(p)
    p.set_defaults(func=cmd_confound_check)

    p = sub.add_parser("serve", help="start a model service (HTTP and gRPC in one process)")
    services = p.add_subparsers(dest="service", required=True)
    from safetypairs.serving.serve import SERVICES

    for name, spec in SERVICES.items():
        s = services.add_parser(name, help=f"the {name} service")
        s.add_argument("--host", default="0.0.0.0", help="HTTP bind address")
        s.add_argument("--http-port", type=int, default=spec.http_port, help="HTTP port")
        _add_setting_flags(s, spec.settings())
        s.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SafetyPairsError as exc:
        print(f"error ({exc.kind}): {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
