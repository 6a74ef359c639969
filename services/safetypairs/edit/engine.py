"""The edit engine: one interface over diffusers instruction-edit pipelines (FLUX.1 Kontext,
Qwen-Image-Edit, InstructPix2Pix). A plain class that knows nothing of BentoML or gRPC; tests
and benchmarks drive it directly.

A model is a diffusers pipeline directory loaded through `from_pretrained`, the embedded tiny
default exactly like a real checkpoint. The pipeline class comes from its `model_index.json`
(`_class_name`) unless a setting names it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from safetypairs.contract.errors import InvalidInput, ModelError
from safetypairs.serving.model_refs import UNTRAINED_MARK
from safetypairs.serving.torch_env import resolve_device, resolve_dtype

# A model card beside model_index.json; the embedded default writes one, real checkpoints
# need none.
CARD_FILE = "safetypairs_card.json"


@dataclass(frozen=True)
class Family:
    """How one pipeline class is driven: the model's usual defaults and which call arguments
    the generic settings feed."""

    pipeline: str
    denoiser: str  # the pipeline attribute holding the denoising network
    steps: int
    guidance_scale: float
    guidance_arg: str  # the __call__ argument the main guidance scale goes to
    image_guidance: bool  # takes image_guidance_scale
    patch: int  # latents are packed in patch x patch tokens: sides are multiples of vae*patch
    negative_prompt: str = ""  # default negative prompt (true CFG only runs with one)
    takes_size: bool = True  # takes height/width (InstructPix2Pix follows its input's size)


FAMILIES: dict[str, Family] = {
    f.pipeline: f
    for f in (
        Family(
            "StableDiffusionInstructPix2PixPipeline",
            "unet",
            steps=20,
            guidance_scale=7.5,
            guidance_arg="guidance_scale",
            image_guidance=True,
            patch=1,
            takes_size=False,
        ),
        Family(
            "FluxKontextPipeline",
            "transformer",
            steps=28,
            guidance_scale=2.5,
            guidance_arg="guidance_scale",
            image_guidance=False,
            patch=2,
        ),
        Family(
            "QwenImageEditPipeline",
            "transformer",
            steps=50,
            guidance_scale=4.0,
            guidance_arg="true_cfg_scale",
            image_guidance=False,
            patch=2,
            negative_prompt=" ",
        ),
    )
}


class EditCancelled(Exception):
    """Raised from the step callback to stop a running edit (client gone, deadline passed)."""


@dataclass(frozen=True)
class EditCard:
    name: str
    version: str
    description: str
    untrained: bool
    notice: str


@dataclass(frozen=True)
class EditJob:
    """One edit. `image` is RGB at the working size (see EditEngine.working_size)."""

    image: Image.Image
    instruction: str
    seed: int
    steps: int
    guidance_scale: float
    image_guidance_scale: float | None = None  # InstructPix2Pix only
    negative_prompt: str = ""


Progress = Callable[[int, int], None]  # (steps done, total)


def pipeline_class_name(path: Path) -> str:
    """The `_class_name` of a diffusers pipeline directory's model_index.json."""
    index = path / "model_index.json"
    try:
        return json.loads(index.read_text())["_class_name"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"{path} is not a diffusers pipeline directory (model_index.json: {exc})"
        ) from None


def read_card(path: Path, fallback_name: str) -> EditCard:
    """The card beside the pipeline, or one naming the checkpoint for pipelines without it."""
    card_path = path / CARD_FILE
    data: dict[str, Any] = json.loads(card_path.read_text()) if card_path.is_file() else {}
    untrained = bool(data.get(UNTRAINED_MARK, False))
    return EditCard(
        name=data.get("name", fallback_name),
        version=str(data.get("version", "")),
        description=data.get("description", ""),
        untrained=untrained,
        notice=data.get("notice", "untrained: random weights" if untrained else ""),
    )


class EditEngine:
    """One loaded pipeline behind one interface. `load` reads a pipeline directory; the
    constructor takes a pipeline already in memory (the device check builds real-size ones
    from configs without writing tens of GB to disk)."""

    def __init__(
        self,
        pipe: Any,
        card: EditCard,
        *,
        scheduler: str = "",
        attention_backend: str = "",
        compile: bool = False,
    ) -> None:
        class_name = type(pipe).__name__
        if class_name not in FAMILIES:
            raise ModelError(
                f"pipeline {class_name} is not supported; supported: {', '.join(FAMILIES)}"
            )
        self.family = FAMILIES[class_name]
        self.card = card
        self.device = str(pipe.device)
        self.dtype = pipe.dtype
        pipe.set_progress_bar_config(disable=True)
        if scheduler:
            pipe.scheduler = _scheduler(pipe.scheduler, scheduler)
        denoiser = getattr(pipe, self.family.denoiser)
        self.attention_backend = attention_backend
        if attention_backend:
            try:
                denoiser.set_attention_backend(attention_backend)
            except Exception as exc:  # unknown name, or its kernels are not installed
                raise ModelError(f"attention backend {attention_backend!r}: {exc}") from exc
        self.compiled = compile
        if compile:
            denoiser.compile()  # in place: the pipeline keeps its module and its config
        self.pipe = pipe

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        pipeline: str = "",
        device: str = "auto",
        dtype: str = "auto",
        name: str = "",
        **options: Any,
    ) -> EditEngine:
        """Load a diffusers pipeline directory through `from_pretrained`, as its
        model_index.json says (or as `pipeline` names); `options` are the constructor's."""
        import diffusers
        from diffusers.utils import is_accelerate_available

        path = Path(path)
        class_name = pipeline or pipeline_class_name(path)
        if class_name not in FAMILIES:
            raise ModelError(
                f"{path}: pipeline {class_name} is not supported; supported: {', '.join(FAMILIES)}"
            )
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        diffusers.utils.logging.disable_progress_bar()  # "Loading pipeline components" bars
        try:
            with warnings.catch_warnings():
                # diffusers 0.42 renamed torch_dtype to dtype; the older releases this project
                # supports (>= 0.35) know only torch_dtype, so the notice is silenced, not heeded.
                warnings.filterwarnings("ignore", "`torch_dtype` is deprecated", FutureWarning)
                pipe = getattr(diffusers, class_name).from_pretrained(
                    path,
                    torch_dtype=torch_dtype,
                    # Without accelerate (not a dependency) diffusers loads the ordinary way
                    # anyway; asking for it only adds a warning to every start-up.
                    low_cpu_mem_usage=is_accelerate_available(),
                )
        except Exception as exc:  # missing files, wrong class for the checkpoint, bad configs
            raise ModelError(f"cannot load {class_name} from {path}: {exc}") from exc
        pipe.to(torch_device)
        return cls(pipe, read_card(path, name or path.name), **options)

    @property
    def scheduler(self) -> str:
        return type(self.pipe.scheduler).__name__

    @property
    def size_multiple(self) -> int:
        """Output sides are multiples of this (what the pipeline's latents need)."""
        return int(self.pipe.vae_scale_factor) * self.family.patch

    def working_size(self, width: int, height: int, max_pixels: int) -> tuple[int, int]:
        """The source's size scaled down to at most `max_pixels` (aspect kept), its sides
        rounded down to the model's multiple. InvalidInput when a side would vanish."""
        m = self.size_multiple
        scale = min(1.0, math.sqrt(max_pixels / (width * height)))
        w, h = int(width * scale) // m * m, int(height * scale) // m * m
        if w < m or h < m:
            raise InvalidInput(
                f"image is {width}x{height}; this model needs at least {m} pixels on each side "
                f"at a working size of at most {max_pixels} pixels"
            )
        return w, h

    def edit(
        self,
        job: EditJob,
        progress: Progress | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Image.Image:
        """Run the pipeline on one job; deterministic for a fixed seed on one device.
        `progress` hears each finished step; when `cancelled()` turns true the edit stops at
        the next step with EditCancelled."""
        family = self.family

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
            if cancelled is not None and cancelled():
                raise EditCancelled(f"cancelled after step {step + 1}")
            if progress is not None:
                progress(step + 1, getattr(pipe, "num_timesteps", job.steps))
            return tensors

        if cancelled is not None and cancelled():
            raise EditCancelled("cancelled before the first step")
        kwargs: dict[str, Any] = {
            "prompt": job.instruction,
            "image": job.image,
            "num_inference_steps": job.steps,
            family.guidance_arg: job.guidance_scale,
            # The initial noise comes from a CPU generator: the same seed draws the same noise
            # on every device (the denoising itself is deterministic per device only).
            "generator": torch.Generator("cpu").manual_seed(job.seed),
            "callback_on_step_end": on_step_end,
            "output_type": "pil",
        }
        negative = job.negative_prompt or family.negative_prompt
        if negative:
            kwargs["negative_prompt"] = negative
        if family.image_guidance:
            kwargs["image_guidance_scale"] = job.image_guidance_scale
        if family.takes_size:
            kwargs["width"], kwargs["height"] = job.image.size
        if family.pipeline == "FluxKontextPipeline":
            # Keep the source's size instead of snapping to Kontext's preferred resolutions.
            kwargs.update(_auto_resize=False, max_area=job.image.width * job.image.height)
        with torch.inference_mode():
            out = self.pipe(**kwargs).images[0]
        if out.size != job.image.size:  # a pipeline that rounds differently: back on our grid
            out = out.resize(job.image.size, Image.Resampling.LANCZOS)
        return out.convert("RGB")


def _scheduler(current: Any, name: str) -> Any:
    """The scheduler class `name` configured like `current`; only ones the model lists as
    compatible (a flow-matching transformer cannot run a DDPM scheduler)."""
    import diffusers

    compatible = {type(current).__name__, *(c.__name__ for c in current.compatibles)}
    if name not in compatible:
        raise ModelError(
            f"scheduler {name} does not fit this model; compatible: {', '.join(sorted(compatible))}"
        )
    return getattr(diffusers, name).from_config(current.config)
