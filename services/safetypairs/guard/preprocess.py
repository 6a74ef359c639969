"""Pixels in the form a guard's input spec describes; shared by serving and training, so a
head is trained on exactly what the served graph will see.

The least work that gives the reference tensor ((x/255*range - mean) / std after resize and
crop, to 1e-6): scaling, mean, std, channel order and layout are one vectorised pass from the
8-bit pixels (a view of Pillow's buffer) into the float32 array the model reads.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from safetypairs.guard.sidecar import GuardInput


def _resized(img: Image.Image, spec: GuardInput) -> Image.Image:
    size = spec.size
    if spec.resize == "squash":
        return img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    if spec.resize == "squash_center_crop":
        # Bilinear, as the Caffe-era reference pipelines these models come from.
        img = img.resize((spec.resize_to, spec.resize_to), Image.Resampling.BILINEAR)
        offset = (spec.resize_to - size) // 2
        return img.crop((offset, offset, offset + size, offset + size))
    # Shorter side to `size`, centre crop. Resampling only the crop's footprint (Pillow's
    # `box`) would skip the cropped-off columns, but its 8-bit results differ from
    # resize-then-crop by one level or more (measured: up to 11 on noise), past 1e-3.
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def preprocess(img: Image.Image, spec: GuardInput) -> np.ndarray:
    """RGB image -> one float32 input array (CHW or HWC)."""
    img = _resized(img, spec)
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
