"""Pixels in the form a guard's input spec describes; shared by serving and training, so a
head is trained on exactly what the served graph will see."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from safetypairs.guard.sidecar import GuardInput


def preprocess(img: Image.Image, spec: GuardInput) -> np.ndarray:
    """RGB image -> one float32 input array (CHW or HWC)."""
    size = spec.size
    if spec.resize == "squash":
        img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    elif spec.resize == "squash_center_crop":
        # Bilinear, as the Caffe-era reference pipelines these models come from.
        img = img.resize((spec.resize_to, spec.resize_to), Image.Resampling.BILINEAR)
        offset = (spec.resize_to - size) // 2
        img = img.crop((offset, offset, offset + size, offset + size))
    else:
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    if spec.jpeg_reencode:
        buf = io.BytesIO()
        img.save(buf, format="JPEG")
        img = Image.open(io.BytesIO(buf.getvalue()))
    arr = np.asarray(img, dtype=np.float32)
    if spec.channel_order == "BGR":
        arr = arr[:, :, ::-1]
    if spec.pixel_range != 255.0:
        arr = arr * (spec.pixel_range / 255.0)
    arr = (arr - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr, dtype=np.float32)
