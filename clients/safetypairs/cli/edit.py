"""Edit command: `edit` applies one instruction to an image through the edit service."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from safetypairs.cli.common import (
    Subcommands,
    add_client_command,
    add_progress_flag,
    connect,
    print_json,
    usage_error,
)
from safetypairs.cli.progress import counter
from safetypairs.client.edit import EditClient, EditResult


def register(sub: Subcommands) -> None:
    what = "apply one instruction edit to an image (edit service)"
    p = add_client_command(sub, "edit", what, "edit", 600.0)
    p.add_argument("image", help="image file")
    p.add_argument("--instruction", required=True, help="what to change, e.g. 'remove the knife'")
    p.add_argument("--out", required=True, help="file to write the edited image to (.png, .webp)")
    p.add_argument("--seed", type=int, default=None, help="same seed, same output; default: random")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (server default)")
    p.add_argument(
        "--guidance-scale", type=float, default=None, help="instruction guidance (server default)"
    )
    p.add_argument("--image-guidance-scale", type=float, default=None, help="InstructPix2Pix only")
    p.add_argument("--negative-prompt", default="", help="what the output should not show")
    p.add_argument("--mask", default=None, help="image of the source's size; white = may change")
    p.add_argument("--region", default="", help="x,y,width,height: only this rectangle may change")
    p.add_argument("--format", choices=["png", "webp"], default=None, help="default: from --out")
    p.add_argument("--change-map", default=None, help="also write the change map PNG here")
    add_progress_flag(p)
    p.add_argument("--json", action="store_true", help="print the result's fields as JSON")
    p.set_defaults(func=cmd_edit)


def cmd_edit(args: argparse.Namespace) -> int:
    image, out = Path(args.image), Path(args.out)
    if not image.is_file():
        return usage_error(f"no such image file: {image}")
    region = None
    if args.region:
        try:
            x, y, w, h = (int(v) for v in args.region.split(","))
        except ValueError:
            return usage_error(f"--region {args.region!r} must be x,y,width,height")
        region = (x, y, w, h)
    fmt = args.format or ("webp" if out.suffix.lower() == ".webp" else "png")
    with (
        connect(EditClient, args, timeout=args.timeout) as editor,
        counter("denoising", "step") as steps,
    ):
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
            on_progress=None if args.no_progress else lambda p: steps(p.step, p.total),
        )
    result.save(out)
    if args.change_map:
        Path(args.change_map).write_bytes(result.change.map_png)
    if args.json:
        print_json(_summary(result, out))
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


def _summary(result: EditResult, out: Path) -> dict[str, Any]:
    summary = dataclasses.asdict(result)
    del summary["image"]
    summary["change"].pop("map_png")
    return {"out": str(out), **summary}
