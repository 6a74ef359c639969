"""A perceptual distance between two images from EfficientNet-Lite0's intermediate features.

LPIPS-style without learned layer weights: at several depths, features are unit-normalised
over channels at each position, the squared difference is summed over channels, averaged over
the positions that count, then averaged over depths. 0 for identical images; small for changes
a person barely sees; larger as content changes. A mask limits the comparison to part of the
image (the pair pipeline compares the area outside the edit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from safetypairs.vision.efficientnet import MEAN, STD, feature_maps, load_efficientnet_lite0

# Last block of the stages at 1/2, 1/4, 1/8, 1/16 and 1/32 resolution.
DEFAULT_BLOCKS = (0, 2, 4, 10, 14)


class PerceptualDistance:
    def __init__(
        self,
        net: torch.nn.Module | None = None,
        *,
        blocks: Sequence[int] = DEFAULT_BLOCKS,
        size: int = 224,
    ) -> None:
        self.net = net if net is not None else load_efficientnet_lite0()
        self.blocks = tuple(blocks)
        self.size = size

    def _tensor(self, img: Image.Image) -> torch.Tensor:
        img = img.convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = (arr - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())[None]

    @torch.no_grad()
    def __call__(self, a: Image.Image, b: Image.Image, mask: np.ndarray | None = None) -> float:
        """Distance between `a` and `b`; `mask` (H x W of `a`, truthy = compare) restricts it."""
        if a.size != b.size:
            raise ValueError(f"images differ in size: {a.size} vs {b.size}")
        x = torch.cat([self._tensor(a), self._tensor(b)])
        weight = None
        if mask is not None:
            mask = np.asarray(mask, dtype=np.float32)
            if mask.shape != (a.size[1], a.size[0]):
                raise ValueError(f"mask is {mask.shape}, image is {a.size[1]}x{a.size[0]}")
            if mask.sum() == 0:
                raise ValueError("mask selects no pixels")
            weight = torch.from_numpy(mask)[None, None]
        total = 0.0
        for fmap in feature_maps(self.net, x, self.blocks):
            unit = F.normalize(fmap, dim=1)
            diff = (unit[0] - unit[1]).pow(2).sum(dim=0)  # H x W
            if weight is None:
                total += float(diff.mean())
            else:
                w = F.interpolate(weight, size=diff.shape, mode="area")[0, 0]
                total += float((diff * w).sum() / w.sum().clamp_min(1e-8))
        return total / len(self.blocks)
