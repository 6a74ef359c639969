"""What a real-size judge costs on this machine's CPU: LlavaGuard v1.2 0.5B's architecture
(LLaVA-OneVision: SigLIP-so400m/14 at 384 px with anyres_max_9 tiling, Qwen2-0.5B language
model) at its real configuration with random weights, nothing downloaded. One photo per
verdict: seconds per verdict and peak resident memory, forward mode (rating-token
probabilities from one pass) vs generate mode (the whole answer under the regex constraint),
fp32 vs bf16. Each (dtype) runs in its own process, so its peak memory is its own.

    python benchmarks/judge_cpu_real_size.py [--repeats 1] [--threads 0]
    python benchmarks/judge_cpu_real_size.py --size 7b --device cuda   # prepared, not run here

The tokenizer is the embedded default judge's (byte-level BPE like Qwen2's, trained on the
judge's prompts), so the prompt's token count is close to, not exactly, a real Qwen2
tokenizer's; the language model's vocabulary (and so its embedding and output layer) has the
real size. Random weights write a different answer than LlavaGuard would, but the constraint
fixes the generated answer's shape (15-20 tokens without a rationale), so generate mode's
cost is close to a real checkpoint's. Times drift with the machine's load (shared cores):
read the load average printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import skimage
import torch
from PIL import Image

from safetypairs.contract.policy import default_policy
from safetypairs.judge.default_model import CHAT_TEMPLATE, ensure_default_judge
from safetypairs.judge.engine import JudgeEngine, RateJob
from safetypairs.judge.families import ImagesOnlyVideoProcessor, images_only
from safetypairs.serving.model_refs import UNTRAINED_MARK

# The language models: Qwen2-0.5B as LLaVA-OneVision-0.5B (and LlavaGuard v1.2 0.5B)
# configure it; Qwen2-7B's published sizes for the 7B judge (LlavaGuard v1.2 7B), a GPU
# configuration (--size 7b --device cuda) prepared for the device check and not run here.
QWEN2_0_5B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "vocab_size": 152000,
}
QWEN2_7B = {
    **QWEN2_0_5B,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "tie_word_embeddings": False,
    "vocab_size": 152064,
}
SIZES = {"0.5b": QWEN2_0_5B, "7b": QWEN2_7B}
PHOTO = "astronaut.png"  # 512 x 512: anyres picks a 2 x 2 grid of 384 px tiles + the overview


def build(out: Path, size: str, device: str) -> Path:
    """The architecture at real size with random weights (initialised on `device`), saved in
    bf16 with its processor."""
    from transformers import (
        AutoTokenizer,
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
        Qwen2Config,
    )

    tok = AutoTokenizer.from_pretrained(ensure_default_judge(str(out.parent / "home")))
    tok.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    processor = images_only(LlavaOnevisionProcessor)(
        image_processor=LlavaOnevisionImageProcessorPil(),  # 384 px, anyres_max_9 grid
        tokenizer=tok,
        video_processor=ImagesOnlyVideoProcessor(),
        num_image_tokens=729,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )
    text = Qwen2Config(**SIZES[size], eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = LlavaOnevisionConfig(  # the vision defaults are SigLIP-so400m/14 at 384 px
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        video_token_id=tok.convert_tokens_to_ids("<video>"),
    )
    setattr(config, UNTRAINED_MARK, True)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaOnevisionForConditionalGeneration(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    (out / "params.txt").write_text(str(params))
    return out


def measure(path: Path, dtype: str, device: str, repeats: int) -> dict[str, float]:
    """In this process: load, then time forward and generate verdicts on one photo."""
    started = time.perf_counter()
    engine = JudgeEngine(path, dtype=dtype, device=device)
    load_s = time.perf_counter() - started
    photo = Image.open(Path(skimage.__file__).parent / "data" / PHOTO).convert("RGB")
    job = RateJob(photo, default_policy(), 0.5, False)
    enc = engine._encode([engine.chat(engine.rate_prompt(job.policy))], [photo], [[]])
    tokens = enc.inputs["input_ids"].shape[1]
    image_tokens = int((enc.inputs["input_ids"] == engine.model.config.image_token_id).sum())
    times: dict[str, list[float]] = {"forward": [], "generate": []}
    for _ in range(repeats):
        for mode in times:
            started = time.perf_counter()
            engine.rate([job], mode)
            if device == "cuda":
                torch.cuda.synchronize()
            times[mode].append(time.perf_counter() - started)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return {
        "peak_gpu_gib": gpu,
        "load_s": load_s,
        "forward_s": statistics.median(times["forward"]),
        "generate_s": statistics.median(times["generate"]),
        "peak_rss_gib": peak_kib / 2**20,
        "prompt_tokens": tokens,
        "image_tokens": image_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--child", nargs=2, metavar=("DIR", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        path, dtype = Path(args.child[0]), args.child[1]
        print(json.dumps(measure(path, dtype, args.device, args.repeats)))
        return
    with tempfile.TemporaryDirectory(prefix="judge-real-size-") as tmp:
        started = time.perf_counter()
        path = build(Path(tmp) / f"llavaguard-{args.size}-architecture", args.size, args.device)
        params = int((path / "params.txt").read_text())
        print(f"built {params / 1e6:.0f} M parameters in {time.perf_counter() - started:.0f} s")
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores"
        )
        options = ["--repeats", str(args.repeats), "--threads", str(args.threads)]
        options += ["--device", args.device]
        for dtype in args.dtypes.split(","):
            load = os.getloadavg()[0]
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--child", str(path), dtype, *options],
                    check=True,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(out)
            print(
                f"{dtype:9} forward {r['forward_s']:6.1f} s/verdict  generate "
                f"{r['generate_s']:6.1f} s/verdict  peak RSS {r['peak_rss_gib']:.2f} GiB  "
                f"(load {r['load_s']:.0f} s; {r['prompt_tokens']} input tokens, "
                f"{r['image_tokens']} of them image; load average {load:.1f})"
                + (f"  peak GPU {r['peak_gpu_gib']:.1f} GiB" if args.device == "cuda" else "")
            )


if __name__ == "__main__":
    main()
