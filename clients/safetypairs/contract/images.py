"""Decoding of untrusted image bytes into RGB pixels, with limits checked before decoding.

Images are hostile input: the format is allow-listed, the encoded size and the declared
pixel count are checked before any pixel is decoded (`Image.open` only reads the header),
decompression-bomb warnings are errors, EXIF orientation is applied and every mode is
converted to RGB explicitly.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from safetypairs.contract.errors import InvalidInput, PayloadTooLarge

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
# Where OpenCV decodes the same 8-bit RGB pixels faster than Pillow (benchmarks/
# image_decoders.py, 2026-12-06: PNG 0.83-0.90x Pillow's time, WebP 0.60-0.68x, BMP
# 0.19-0.60x). JPEG stays with Pillow: the guard decodes it at reduced size (draft, 0.6 ms
# for a 451x300 photo); OpenCV's full-size decode is faster than Pillow's full-size one
# (0.64-0.87x) but its reduced modes were not measured against draft here.
OPENCV_FORMATS = ("PNG", "WEBP", "BMP")
# Truncated files must fail, not decode into half-grey pictures.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@functools.cache
def _opencv() -> Any:
    """OpenCV when installed (the guard extras install it), imported on the first decode so
    that the SDK's import stays light; None: Pillow decodes everything."""
    try:
        import cv2
    except ImportError:
        return None
    cv2.setNumThreads(1)  # one request per thread already; no pool of its own per call
    # Hostile input must not flood the log: a failed decode falls back to Pillow, which says why.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int


def _describe(data: bytes) -> str:
    head = data[:16].lstrip()
    for sig, name in (
        (b"<svg", "SVG"),
        (b"<?xml", "XML/SVG"),
        (b"<!doctype html", "HTML"),
        (b"<html", "HTML"),
        (b"%PDF", "PDF"),
        (b"{", "JSON"),
        (b"PK\x03\x04", "ZIP"),
    ):
        if head.lower().startswith(sig.lower()):
            return f"the bytes look like {name}"
    return f"first bytes {data[:8].hex(' ')}"


def decode_image(data: bytes, limits: ImageLimits, *, draft_size: int | None = None) -> Image.Image:
    """Decode `data` into an RGB image or raise InvalidInput / PayloadTooLarge naming why.

    `draft_size` lets JPEG decode at a reduced scale when the model needs far fewer pixels.
    """
    if not data:
        raise InvalidInput("image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"image is {len(data)} bytes, over the limit of {limits.max_bytes} bytes"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except UnidentifiedImageError:
            raise InvalidInput(
                f"not a supported image ({_describe(data)}); accepted formats: "
                f"{', '.join(ALLOWED_FORMATS)}"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PayloadTooLarge(f"image rejected as a decompression bomb: {exc}") from None
        except Exception as exc:  # Pillow's plugins raise many types on malformed headers
            raise InvalidInput(
                f"image header is corrupt or truncated: {type(exc).__name__}: {exc}"
            ) from None
        width, height = img.size
        if width < 1 or height < 1:
            raise InvalidInput(f"{img.format} image declares an empty size {width}x{height}")
        if width * height > limits.max_pixels:
            raise PayloadTooLarge(
                f"{img.format} image is {width}x{height} = {width * height} pixels, over the "
                f"limit of {limits.max_pixels} pixels"
            )
        fast = _decode_opencv(img, data)
        if fast is not None:
            return fast
        try:
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PayloadTooLarge(f"image rejected as a decompression bomb: {exc}") from None
        except Exception as exc:  # as above, for the pixel data
            raise InvalidInput(
                f"{_fmt(img.format)}image data is corrupt or truncated: {exc}"
            ) from None
        try:
            return to_rgb(ImageOps.exif_transpose(img))
        except Exception as exc:  # a malformed EXIF block or an odd mode
            raise InvalidInput(f"{_fmt(img.format)}image cannot be converted: {exc}") from None


def _decode_opencv(img: Image.Image, data: bytes) -> Image.Image | None:
    """The pixels decoded by OpenCV where it is faster and the image is plain 8-bit RGB with
    no alpha, palette, transparency or EXIF block (Pillow's path handles those); None to let
    Pillow decode it, also when OpenCV fails: Pillow then names the problem (a truncated file
    fails there rather than decoding partially). Called after the size checks."""
    if img.format not in OPENCV_FORMATS or img.mode != "RGB" or (cv2 := _opencv()) is None:
        return None
    if "transparency" in img.info or "exif" in img.info or b"eXIf" in data:
        return None  # a PNG's eXIf chunk may follow the pixels, where the header cannot see it
    pixels = cv2.imdecode(
        np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if pixels is None or pixels.shape != (img.height, img.width, 3):
        return None
    return Image.fromarray(pixels, mode="RGB")


def _fmt(fmt: str | None) -> str:
    return f"{fmt} " if fmt else ""


def to_rgb(img: Image.Image) -> Image.Image:
    """Every mode to 8-bit RGB. Transparency is composited on white, as a viewer shows it,
    so that content hidden under alpha=0 is not what the model sees either."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max()) if arr.size else 0.0
        if img.mode == "F":
            top = 1.0 if peak <= 1.0 else peak
        else:  # integer samples: 8-bit data in a wide container, else 16-bit
            top = 255.0 if peak <= 255 else 65535.0
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
