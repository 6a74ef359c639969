"""Embeddings computed once: cached on disk per encoder, keyed by the image file's SHA-256.

    <cache>/<encoder key>/<sha[:2]>/<sha>.npy

Each entry is written to a temporary name and renamed, so an interrupted or failed run never
leaves a torn entry, and entries already cached stay.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from safetypairs.contract.images import decode_image
from safetypairs.contract.progress import task
from safetypairs.contract.training_data import LIMITS, Example
from safetypairs.guard.preprocess import preprocess
from safetypairs.training.encoders import Encoder


@dataclass
class EmbedStats:
    cached: int = 0
    computed: int = 0


class EmbeddingCache:
    def __init__(self, root: Path, encoder: Encoder, batch_size: int = 16) -> None:
        self.dir = Path(root) / encoder.key
        self.encoder = encoder
        self.batch_size = batch_size
        self.stats = EmbedStats()

    def _entry(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.npy"

    def embed(self, examples: Sequence[Example]) -> np.ndarray:
        """(len(examples), dim) features, computing only what the cache lacks."""
        missing = sorted(
            {ex.digest: ex.path for ex in examples if not self._entry(ex.digest).is_file()}.items()
        )
        with task("embedding images", len(missing), "img") as shown:
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start : start + self.batch_size]
                self._compute(chunk)
                shown.advance(len(chunk))
        self.stats.computed += len(missing)
        self.stats.cached += len(examples) - len(missing)
        return np.stack([np.load(self._entry(ex.digest)) for ex in examples])

    def _compute(self, chunk: list[tuple[str, Path]]) -> None:
        """Embed one batch of (digest, path) and cache each row."""
        x = np.stack(
            [preprocess(decode_image(p.read_bytes(), LIMITS), self.encoder.input) for _, p in chunk]
        )
        with torch.no_grad():
            feats = self.encoder.module(torch.from_numpy(x)).numpy().astype(np.float32)
        for (digest, _), row in zip(chunk, feats, strict=True):
            entry = self._entry(digest)
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                np.save(f, row)
            os.replace(tmp, entry)
