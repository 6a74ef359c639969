"""How much of an image an edit left alone: the changed region and a perceptual similarity
(SSIM, scikit-image's implementation) over everything outside it."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity
from skimage.morphology import dilation, disk

from safetypairs.contract.pair_record import Similarity

# A pixel counts as changed when some channel moved by more than this (of 255): above JPEG-ish
# noise and the editor's own re-synthesis jitter, below any visible edit.
CHANGE_THRESHOLD = 32
# Changed pixels are grown by this many pixels before measuring the outside, so the edit's own
# soft border does not count against preservation.
MARGIN_PX = 3


def _rgb(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if size is not None and img.size != size:  # editors round sizes to their multiple
        img = img.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.int16)


def compare(kept: bytes, edit: bytes, threshold: int = CHANGE_THRESHOLD) -> Similarity:
    """Changed region and outside-SSIM of `edit` against `kept` (compared at kept's size)."""
    a = _rgb(kept)
    b = _rgb(edit, (a.shape[1], a.shape[0]))
    changed = np.abs(a - b).max(axis=2) > threshold
    fraction = float(changed.mean())
    bbox = None
    if changed.any():
        ys, xs = np.nonzero(changed)
        bbox = (
            int(xs.min()),
            int(ys.min()),
            int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1),
        )
    outside = ~dilation(changed, disk(MARGIN_PX)) if changed.any() else ~changed
    ssim = None
    if outside.any() and min(a.shape[:2]) >= 7:  # SSIM's window needs 7x7
        _, ssim_map = structural_similarity(
            a.astype(np.float64),
            b.astype(np.float64),
            channel_axis=2,
            data_range=255,
            full=True,
        )
        ssim = float(ssim_map.mean(axis=2)[outside].mean())
    # Rounded as recorded, so the acceptance rules decide on the figures the record shows.
    return Similarity(
        ssim_outside=None if ssim is None else round(ssim, 6),
        changed_fraction=round(fraction, 6),
        change_bbox=bbox,
    )
