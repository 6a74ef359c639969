"""Device check for the edit service: each supported pipeline class at its real architecture
size (InstructPix2Pix / SD 1.5, FLUX.1 Kontext [dev], Qwen-Image-Edit), random weights in
bfloat16, built from the configs in safetypairs.edit.random_pipelines (nothing is downloaded),
driven through the service's own EditEngine. Prints seconds per edit at 1024x1024 with 28 steps
(text encoding, every denoising step and the VAE included; a 2-step warm-up edit first).

    python benchmarks/edit_device_check.py [--size 1024] [--steps 28] [--json results.json]
    python benchmarks/edit_device_check.py --tiny     # the same path, tiny configs on CPU

Without a CUDA device it says so and exits 0: there is nothing real to measure on a CPU.
Random weights make the pixels meaningless, not the timing: the work per step is the real
architecture's.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time

import numpy as np
import torch
from PIL import Image

from safetypairs.edit.engine import FAMILIES, EditEngine, EditJob
from safetypairs.edit.random_pipelines import random_pipeline


def check(
    pipeline: str, size: int, steps: int, device: str, dtype: torch.dtype, tiny: bool, **opts
) -> dict:
    started = time.perf_counter()
    pipe, card = random_pipeline(pipeline, "tiny" if tiny else "real", device, dtype)
    engine = EditEngine(pipe, card, **opts)
    built_s = time.perf_counter() - started
    params = sum(
        p.numel()
        for c in pipe.components.values()
        if isinstance(c, torch.nn.Module)
        for p in c.parameters()
    )
    width, height = engine.working_size(size, size, size * size)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))

    def edit(n: int) -> float:
        job = EditJob(image, "remove the gun from the table", 0, n, engine.family.guidance_scale)
        if engine.family.image_guidance:
            job = EditJob(image, job.instruction, 0, n, job.guidance_scale, 1.5)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        engine.edit(job)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    edit(2)  # warm-up: kernels, allocator, compile when asked
    seconds = edit(steps)
    row = {
        "pipeline": pipeline,
        "parameters_b": round(params / 1e9, 3),
        "size": f"{width}x{height}",
        "steps": steps,
        "dtype": str(dtype).removeprefix("torch."),
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "build_s": round(built_s, 1),
        "seconds_per_edit": round(seconds, 3),
        "seconds_per_step": round(seconds / steps, 4),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)
        if device.startswith("cuda")
        else None,
        "attention_backend": opts.get("attention_backend") or "default",
        "compiled": bool(opts.get("compile")),
    }
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--pipelines", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--attention-backend", default="", help="e.g. flash, _native_cudnn")
    parser.add_argument("--compile", action="store_true", help="torch.compile the denoiser")
    parser.add_argument("--tiny", action="store_true", help="tiny configs on CPU (script check)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    if args.tiny:
        device, dtype, size, steps = "cpu", torch.float32, 64, 2
    elif torch.cuda.is_available():
        device, dtype, size, steps = "cuda", torch.bfloat16, args.size, args.steps
    else:
        print("no CUDA device here: the edit device check needs one (nothing measured)")
        return 0
    rows = []
    for pipeline in args.pipelines:
        try:
            row = check(
                pipeline,
                size,
                steps,
                device,
                dtype,
                args.tiny,
                attention_backend=args.attention_backend,
                compile=args.compile,
            )
        except Exception as exc:  # report and go on: one family failing says nothing of others
            row = {"pipeline": pipeline, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
        gc.collect()  # the pipeline went with check(); give its memory back before the next
        if device == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
