"""Where an edit changed the image: a per-pixel change map and the bounding box of the change,
computed from the source and the output (the preservation hint clients check pairs with)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Change:
    diff: np.ndarray  # (H, W) uint8: max |output - source| over R, G, B
    bbox: tuple[int, int, int, int] | None  # x, y, width, height of pixels over the threshold
    changed_fraction: float
    threshold: int
    max_diff_outside: int  # largest difference outside the allowed area (0 without one)


def change_map(
    source: np.ndarray, output: np.ndarray, threshold: int, area: np.ndarray | None = None
) -> Change:
    """Compare two (H, W, 3) uint8 images of one size; `area` (H, W) bool marks where the edit
    was allowed to act."""
    if source.shape != output.shape:
        raise ValueError(f"source {source.shape} and output {output.shape} differ in shape")
    diff = np.abs(source.astype(np.int16) - output.astype(np.int16)).max(axis=2).astype(np.uint8)
    changed = diff > threshold
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    bbox = None
    if rows.size:
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        bbox = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    outside = 0
    if area is not None and not area.all():
        outside = int(diff[~area].max())
    return Change(diff, bbox, float(changed.mean()), threshold, outside)
