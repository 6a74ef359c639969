"""Torch device and dtype settings ("auto", "cpu", "cuda:1"; "auto", "bfloat16", ...) resolved
once for every torch-side service. Imported only by services that run torch (never the guard)."""

from __future__ import annotations

import logging

import torch

from safetypairs.contract.errors import ModelError

DTYPES = ("float32", "bfloat16", "float16")


def resolve_device(device: str) -> str:
    """ "auto" is the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """ "auto" is bfloat16 on GPUs and float32 on CPUs (where half precision is slow)."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def set_threads(threads: int) -> None:
    """Intra-op threads for this process; 0 keeps torch's default (every core). Two torch
    services on one machine, each with every core, spin against each other (OpenMP) and run
    many times slower than the cores allow: give each its share."""
    if threads > 0:
        torch.set_num_threads(threads)


class _DropNotice(logging.Filter):
    """Drops log records whose message holds `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_start_up() -> None:
    """Silence the start-up notices of transformers that tell an operator nothing here:

    * "`...ImageProcessor` requires torchvision (not installed); falling back to
      `...ImageProcessorPil`": torchvision is left out on purpose (its PyPI wheel is CUDA-linked,
      see the `models` extra) and the PIL processors are the ones these services mean to use;
    * its loading progress bars: carriage-return bars in a service log (the service logs its
      own line once the model is loaded). The editor turns off diffusers' bars as it loads.
    """
    import transformers

    logging.getLogger("transformers.utils.import_utils").addFilter(
        _DropNotice("requires torchvision (not installed); falling back to")
    )
    transformers.utils.logging.disable_progress_bar()
