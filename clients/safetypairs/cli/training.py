"""Guard model commands, run in this process (they need the `models` extra): `train-guard`,
`guard-variant` (int8 or fp16 copies) and `register-guard` (into the BentoML model store)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetypairs.cli.common import (
    Subcommands,
    add_pairs_flag,
    add_progress_flag,
    codes,
    image_paths,
    local_pair_datasets,
    usage_error,
)
from safetypairs.contract.errors import SafetyPairsError


def register(sub: Subcommands) -> None:
    p = sub.add_parser("train-guard", help="train a guard head on a frozen encoder and export it")
    p.add_argument(
        "--encoder",
        default="efficientnet-lite0",
        help="efficientnet-lite0, or a Hugging Face id / local dir / BentoML tag of a "
        "CLIP, SigLIP or other vision model with pooled output",
    )
    p.add_argument("--data", action="append", default=[], help="labelled JSONL or folder (repeat)")
    add_pairs_flag(p)
    p.add_argument(
        "--human-accepted-only",
        action="store_true",
        help="only the pairs people accepted in `review` (reviews.jsonl beside pairs.jsonl)",
    )
    p.add_argument("--out", required=True, help="folder to write guard.onnx + guard.json into")
    p.add_argument("--categories", default="", help="codes to train; default: all with examples")
    p.add_argument("--head", choices=["linear", "mlp"], default="linear", help="classifier head")
    p.add_argument("--margin", type=float, default=0.0, help="pairwise margin in logits; 0 = off")
    p.add_argument(
        "--val-fraction", type=float, default=0.25, help="share held out to calibrate thresholds"
    )
    p.add_argument("--seed", type=int, default=0, help="split and weight seed")
    p.add_argument("--target", default="f1", help="threshold calibration: f1 or precision:P")
    p.add_argument("--cache", default=None, help="embedding cache folder (default: beside --out)")
    p.add_argument("--name", default="trained-guard", help="model name on its card")
    p.add_argument("--version", default="1", help="model version on its card")
    add_progress_flag(p)
    p.set_defaults(func=cmd_train_guard, extra="models")

    p = sub.add_parser("guard-variant", help="write an int8 or fp16 copy of a guard")
    p.add_argument("path", help="a guard .onnx with its sidecar, or its folder")
    p.add_argument("--variant", choices=["int8-static", "int8-dynamic", "fp16"], required=True)
    p.add_argument(
        "--images",
        nargs="+",
        required=True,
        help="real images: the first half calibrates, the second half checks agreement",
    )
    p.add_argument("--out", required=True, help="new folder for the copy (refused if it exists)")
    p.set_defaults(func=cmd_guard_variant, extra="models")

    p = sub.add_parser(
        "register-guard", help="copy a guard into the BentoML model store under a version tag"
    )
    p.add_argument("path", help="a guard: .onnx with sidecar, ensemble manifest, or their folder")
    p.add_argument("--name", default="safetypairs-guard", help="store name (default %(default)s)")
    p.set_defaults(func=cmd_register_guard, extra="serve")


def cmd_train_guard(args: argparse.Namespace) -> int:
    with local_pair_datasets(args):
        return _train_guard(args)


def _train_guard(args: argparse.Namespace) -> int:
    from safetypairs.training.train import TrainConfig, train_guard

    config = TrainConfig(
        encoder=args.encoder,
        out=Path(args.out),
        data=[Path(p) for p in args.data],
        pairs=[Path(p) for p in args.pairs],
        categories=codes(args.categories),
        head=args.head,
        margin=args.margin,
        val_fraction=args.val_fraction,
        seed=args.seed,
        target=args.target,
        cache=Path(args.cache) if args.cache else None,
        name=args.name,
        version=args.version,
        human_accepted_only=args.human_accepted_only,
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
    if sc.untrained:
        print(f"NOTE: {sc.notice}")
    return 0


def cmd_guard_variant(args: argparse.Namespace) -> int:
    from safetypairs.contract.images import ImageLimits, decode_image
    from safetypairs.guard.artifact import guard_artifact_path
    from safetypairs.guard.engine import GuardEngine
    from safetypairs.guard.quantize import decision_agreement, make_variant

    source = guard_artifact_path(args.path)
    if Path(args.out).exists():
        return usage_error(f"{args.out} exists: write the copy to a new folder")
    fp32 = GuardEngine.load(source)
    limits = ImageLimits(64 * 1024 * 1024, 100_000_000)
    arrays = []
    for path in image_paths(args.images):
        try:
            arrays.append(fp32.preprocess(decode_image(path.read_bytes(), limits)))
        except SafetyPairsError as exc:
            print(f"skipping {path}: {exc.message}", file=sys.stderr)
    if len(arrays) < 2:
        return usage_error("give at least two images (--images)")
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
