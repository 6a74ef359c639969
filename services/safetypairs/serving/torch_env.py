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


class _TorchvisionFallback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


def quiet_torchvision_fallback() -> None:
    """Drop transformers' warning that, without torchvision, it loads a processor's PIL image
    processor instead. That is the CPU images' install on purpose (torchvision's PyPI wheel is
    built for CUDA and its ops do not load beside the CPU torch) and these services hand the
    processors PIL images anyway: nothing for an operator to act on. Other warnings stay."""
    logging.getLogger("transformers.utils.import_utils").addFilter(_TorchvisionFallback())
