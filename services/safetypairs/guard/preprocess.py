"""Pixels in the form a guard's input spec describes; shared by serving and training, so a
head is trained on exactly what the served graph will see.

The least work that gives the reference tensor ((x/255*range - mean) / std after resize and
crop, to 1e-6): the resize is Pillow's, pass by pass in Pillow 13's order and in bands on idle
threads where there are any (guard/resize.py); scaling, mean, std, channel order and layout
are one vectorised pass from the 8-bit pixels (a view of Pillow's buffer) into the float32
array the model reads.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
from PIL import Image

from safetypairs.guard.resize import Beside, resize
from safetypairs.guard.sidecar import GuardInput

BICUBIC, BILINEAR = Image.Resampling.BICUBIC, Image.Resampling.BILINEAR


class Resize(NamedTuple):
    """What a spec resizes an image to, with Pillow's filter and reducing gap, and the crop
    it keeps of that (None: all of it)."""

    size: tuple[int, int]
    resample: Image.Resampling
    reducing_gap: float | None
    crop: tuple[int, int, int, int] | None


def resize_for(source: tuple[int, int], spec: GuardInput) -> Resize:
    """The resize `spec` gives an image `source` pixels wide and high."""
    size = spec.size
    if spec.resize == "squash":
        return Resize((size, size), BICUBIC, 3.0, None)
    if spec.resize == "squash_center_crop":
        # Bilinear, as the Caffe-era reference pipelines these models come from.
        side, offset = spec.resize_to, (spec.resize_to - size) // 2
        return Resize((side, side), BILINEAR, None, (offset, offset, offset + size, offset + size))
    # Shorter side to `size`, centre crop: only the crop's rows and columns are resampled
    # (with a few around it; the same pixels as resize-then-crop, guard/resize.py).
    w, h = source
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (nw - size) // 2, (nh - size) // 2
    return Resize((nw, nh), BICUBIC, 3.0, (left, top, left + size, top + size))


def preprocess(img: Image.Image, spec: GuardInput, beside: Beside | None = None) -> np.ndarray:
    """RGB image -> one float32 input array (CHW or HWC). `beside`: idle threads the resize
    may share its rows with (the same array either way)."""
    size, resample, reducing_gap, crop = resize_for(img.size, spec)
    img = resize(img, size, resample, reducing_gap=reducing_gap, crop=crop, beside=beside)
    if spec.jpeg_reencode:
        buf = io.BytesIO()
        img.save(buf, format="JPEG")
        img = Image.open(io.BytesIO(buf.getvalue()))
    pixels = np.asarray(img)  # uint8 HWC, a view of Pillow's buffer
    if spec.channel_order == "BGR":
        pixels = pixels[:, :, ::-1]
    std = np.asarray(spec.std, np.float32)
    scale = np.float32(spec.pixel_range / 255.0) / std
    bias = np.asarray(spec.mean, np.float32) / std
    if spec.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
        scale, bias = scale[:, None, None], bias[:, None, None]
    out = np.empty(pixels.shape, np.float32)
    np.multiply(pixels, scale, out=out)
    out -= bias
    return out
