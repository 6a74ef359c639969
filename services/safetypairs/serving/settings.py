"""Service settings: one name per setting across env vars, CLI flags and manifests.

A field `max_batch_size` is the env var `SAFETYPAIRS_MAX_BATCH_SIZE` and the CLI flag
`--max-batch-size`. Only the standard library is imported here, so the CLI can build its
flags without the serving dependencies.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self, get_type_hints

ENV_PREFIX = "SAFETYPAIRS_"


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


LOG_FORMATS = ("json", "text")
BATCHING_MODES = ("auto", "on", "off")


class SettingsError(ValueError):
    """A setting has a value of the wrong type or out of range (raised at start-up)."""


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"{env_name(name)} must be one of {', '.join(choices)} (got {value!r})")


@dataclass(frozen=True)
class ServingSettings:
    grpc_host: str = _setting("0.0.0.0", "address the in-process gRPC server binds")
    grpc_port: int = _setting(50051, "gRPC port (0 picks a free one)")
    max_batch_size: int = _setting(16, "largest micro-batch sent to the model")
    max_batch_wait_ms: float = _setting(
        0.0,
        "how long the batcher waits for a batch to fill; 0 sends what is queued at once "
        "(requests arriving while the model runs still form the next batch)",
    )
    max_queue: int = _setting(
        64,
        "images that may be in the service at once (decoding, waiting for or in the model); "
        "more are refused at once",
    )
    max_queue_wait_ms: float = _setting(
        0.0,
        "guard and judge: refuse a request at once when the images already inside would keep "
        "it waiting longer than this (estimated from the recent time per image); 0 = only "
        "max_queue bounds the wait",
    )
    max_image_bytes: int = _setting(20 * 1024 * 1024, "largest encoded image accepted")
    max_image_pixels: int = _setting(
        50_000_000, "largest width*height accepted, checked before decoding"
    )
    max_images_per_request: int = _setting(64, "most images in one batch request")
    max_message_bytes: int = _setting(128 * 1024 * 1024, "largest gRPC message received")
    max_request_bytes_in_flight: int = _setting(
        512 * 1024 * 1024,
        "gRPC request bytes being handled at once (all calls together); a message that would "
        "pass it is refused at once with RESOURCE_EXHAUSTED before it is parsed",
    )
    max_concurrent_rpcs: int = _setting(
        256,
        "gRPC calls in progress at once (health checks included); more are refused at once "
        "with RESOURCE_EXHAUSTED",
    )
    decode_threads: int = _setting(
        0,
        "threads decoding and preprocessing images (and, for a guard that does not batch, "
        "running the model); 0 = the cores the process may use (cgroup CPU quota, affinity)",
    )
    memory_trim_interval_s: float = _setting(
        10.0,
        "every so many seconds, give memory freed after a burst of requests back to the system "
        "(glibc malloc_trim); 0 = never",
    )
    shutdown_grace_s: float = _setting(10.0, "seconds in-flight requests get to finish on shutdown")
    workers: int = _setting(
        1,
        "BentoML worker processes: 1 = one process, BentoML's worker without its arbiter; more = "
        "BentoML's arbiter and that many workers, each with a gRPC server on the same port",
    )
    home: str = _setting("", "where built models are cached; empty = ~/.cache/safetypairs")
    auth_tokens_file: str = _setting(
        "", "file of accepted bearer tokens, one per line; empty = no authentication"
    )
    auth_exempt_probes: bool = _setting(
        True, "health, reflection, /livez, /readyz and /metrics need no token"
    )
    tls_cert_file: str = _setting("", "PEM certificate for TLS on the gRPC and HTTP ports")
    tls_key_file: str = _setting("", "PEM private key for TLS on the gRPC and HTTP ports")
    tls_client_ca_file: str = _setting(
        "",
        "PEM CA that client certificates must be signed by (mutual TLS); empty = no client certs",
    )
    http_plaintext: bool = _setting(
        False,
        "with TLS configured, serve the HTTP port without TLS anyway (a proxy in front "
        "terminates it); off = HTTP uses the same certificate, key and client CA as gRPC",
    )
    log_format: str = _setting(
        "text",
        "json = one JSON object per log line (the access log: one per request, with its "
        "request id), for log collectors; text = readable lines",
    )

    def home_dir(self) -> str:
        return self.home or os.path.join(os.path.expanduser("~"), ".cache", "safetypairs")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is not None and raw != "":
                values[f.name] = parse_setting(raw, hints[f.name], env_name(f.name))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise SettingsError(f"{env_name(f.name)} must not be negative (got {value})")
        for name in (
            "max_batch_size",
            "max_queue",
            "max_image_bytes",
            "max_image_pixels",
            "max_images_per_request",
            "max_request_bytes_in_flight",
            "max_concurrent_rpcs",
            "workers",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{env_name(name)} must be at least 1")
        _check_choice("log_format", self.log_format, LOG_FORMATS)
        if self.max_request_bytes_in_flight < self.max_message_bytes:
            raise SettingsError(
                f"{env_name('max_request_bytes_in_flight')} ({self.max_request_bytes_in_flight}) "
                f"must be at least {env_name('max_message_bytes')} ({self.max_message_bytes}): "
                "a message of the largest size could never be handled"
            )
        if self.max_images_per_request > self.max_queue:
            raise SettingsError(
                f"{env_name('max_images_per_request')} ({self.max_images_per_request}) must not "
                f"exceed {env_name('max_queue')} ({self.max_queue}): such a request could never "
                "be admitted"
            )

    def to_env(self) -> dict[str, str]:
        return {env_name(f.name): str(getattr(self, f.name)) for f in dataclasses.fields(self)}


def parse_setting(raw: str, kind: Any, name: str) -> Any:
    """`raw` (an env value or a flag) as `kind`; SettingsError naming `name` when it is not."""
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    return raw


@dataclass(frozen=True)
class GuardSettings(ServingSettings):
    guard_model: str = _setting(
        "",
        "guard model reference: a directory or .onnx file with its JSON sidecar, or a BentoML "
        "model tag; empty = the embedded default (built on first use)",
    )
    ort_providers: str = _setting(
        "",
        "comma-separated onnxruntime execution providers in priority order; empty = "
        "TensorRT, CUDA, then CPU, whichever are available",
    )
    ort_intra_op_threads: int = _setting(
        0,
        "onnxruntime intra-op threads of each model (ensemble member); 0 = the cores the "
        "process may use (cgroup CPU quota, affinity) divided among the members",
    )
    ort_spin_alone: bool = _setting(
        True,
        "on CPU, run a call that is alone in the service on a second onnxruntime session of "
        "the model (each ensemble member) whose intra-op threads spin between operators and "
        "stop when the run ends: about 1 ms less per call on 2 cores, for a second session's "
        "memory (about 35 MB for the baseline guard); calls side by side use the first, whose "
        "threads never spin. Not opened where the guard batches",
    )
    batching: str = _setting(
        "auto",
        "auto = measure the model's cost per image by batch size at start-up and batch only "
        "up to the size that is cheaper per image (on CPU usually none); on = batches of up "
        "to max_batch_size; off = one image per model call",
    )

    def validate(self) -> None:
        super().validate()
        _check_choice("batching", self.batching, BATCHING_MODES)


VERDICT_MODES = ("forward", "generate")


@dataclass(frozen=True)
class TorchSettings(ServingSettings):
    """Settings of the services that run torch (judge, edit)."""

    torch_threads: int = _setting(
        0,
        "torch intra-op threads; 0 = every core. Services sharing a machine should split the "
        "cores between them (e.g. 1 each on 2 cores): oversubscribed torch threads spin and "
        "slow every service many times over",
    )


@dataclass(frozen=True)
class JudgeSettings(TorchSettings):
    grpc_port: int = _setting(50052, "gRPC port (0 picks a free one)")
    judge_model: str = _setting(
        "",
        "judge model reference: a directory, a BentoML model tag or a Hugging Face id of an "
        "image-text-to-text model; empty = the embedded default (built on first use)",
    )
    judge_device: str = _setting("auto", "torch device: auto (cuda when present), cpu, cuda:N")
    judge_dtype: str = _setting(
        "auto", "weights dtype: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16"
    )
    judge_trust_remote_code: bool = _setting(
        False, "let transformers run Python code shipped with the checkpoint (off: never)"
    )
    judge_policy: str = _setting(
        "", "default policy: a policy YAML file; empty = the built-in LlavaGuard-style O1..O9"
    )
    judge_verdict_mode: str = _setting(
        "forward",
        "forward = rating-token probabilities from one forward pass; generate = constrained "
        "generation of the whole answer, then parsing",
    )
    judge_threshold: float = _setting(0.5, "probability of unsafe at which a verdict is unsafe")
    judge_rationale_chars: int = _setting(400, "longest rationale generated, in characters")
    judge_max_proposals: int = _setting(8, "most edit proposals one request may ask for")
    judge_max_prompt_chars: int = _setting(
        32_000, "longest prompt (template with the request's policy) accepted, in characters"
    )
    judge_prompts_dir: str = _setting(
        "", "directory with rate.yaml and propose.yaml replacing the built-in prompt templates"
    )

    def validate(self) -> None:
        super().validate()
        _check_choice("judge_verdict_mode", self.judge_verdict_mode, VERDICT_MODES)
        if not 0.0 < self.judge_threshold < 1.0:
            raise SettingsError(f"{env_name('judge_threshold')} must lie strictly between 0 and 1")
        for name in ("judge_max_proposals", "judge_rationale_chars", "judge_max_prompt_chars"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{env_name(name)} must be at least 1")


EDIT_PIPELINES = (
    "StableDiffusionInstructPix2PixPipeline",
    "FluxKontextPipeline",
    "QwenImageEditPipeline",
)


@dataclass(frozen=True)
class EditSettings(TorchSettings):
    grpc_port: int = _setting(50053, "gRPC port (0 picks a free one)")
    edit_model: str = _setting(
        "",
        "edit model reference: a diffusers pipeline directory, a BentoML model tag or a Hugging "
        "Face id; empty = the embedded default (built on first use)",
    )
    edit_pipeline: str = _setting(
        "",
        "pipeline class: StableDiffusionInstructPix2PixPipeline, FluxKontextPipeline or "
        "QwenImageEditPipeline; empty = the model's model_index.json _class_name",
    )
    edit_device: str = _setting("auto", "torch device: auto (cuda when present), cpu, cuda:N")
    edit_dtype: str = _setting(
        "auto", "weights dtype: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16"
    )
    edit_steps: int = _setting(0, "default denoising steps; 0 = the pipeline's usual (28/50/20)")
    edit_max_steps: int = _setting(100, "most steps a request may ask for")
    edit_guidance_scale: float = _setting(
        0.0,
        "default main guidance (text CFG for InstructPix2Pix, distilled guidance for FLUX.1 "
        "Kontext, true CFG for Qwen-Image-Edit); 0 = the pipeline's usual (7.5/2.5/4.0)",
    )
    edit_image_guidance_scale: float = _setting(
        1.5, "default image guidance (InstructPix2Pix only)"
    )
    edit_max_guidance_scale: float = _setting(30.0, "largest guidance a request may ask for")
    edit_max_instruction_chars: int = _setting(1000, "longest instruction accepted, in characters")
    edit_max_pixels: int = _setting(
        1024 * 1024,
        "largest working size (width*height); bigger sources are scaled down, aspect kept, "
        "before their sides are rounded down to the model's multiple",
    )
    edit_scheduler: str = _setting(
        "", "diffusers scheduler class replacing the model's own (one it lists as compatible)"
    )
    edit_attention_backend: str = _setting(
        "",
        "diffusers attention backend of the denoiser (e.g. flash, _native_cudnn, sage); "
        "empty = the model's default",
    )
    edit_compile: bool = _setting(False, "wrap the denoiser in torch.compile (slow first edit)")
    edit_concurrency: int = _setting(
        1, "edits running at once per replica (a diffusion step holds the whole GPU)"
    )
    edit_queue: int = _setting(
        4, "edits that may wait for a slot; more are refused at once (RESOURCE_EXHAUSTED / 429)"
    )
    edit_change_threshold: int = _setting(
        16, "difference (0..255, max over RGB) above which a pixel counts as changed"
    )

    def validate(self) -> None:
        super().validate()
        if self.edit_pipeline:
            _check_choice("edit_pipeline", self.edit_pipeline, EDIT_PIPELINES)
        for name in (
            "edit_max_steps",
            "edit_max_instruction_chars",
            "edit_max_pixels",
            "edit_concurrency",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{env_name(name)} must be at least 1")
        if self.edit_steps > self.edit_max_steps:
            raise SettingsError(
                f"{env_name('edit_steps')} ({self.edit_steps}) must not exceed "
                f"{env_name('edit_max_steps')} ({self.edit_max_steps})"
            )
        if self.edit_change_threshold > 255:
            raise SettingsError(f"{env_name('edit_change_threshold')} must lie in 0..255")
