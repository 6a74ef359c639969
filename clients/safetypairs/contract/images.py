"""Decoding of untrusted image bytes into RGB pixels, with limits checked before decoding.

Images are hostile input: the format is allow-listed, the encoded size and the declared
pixel count are checked before any pixel is decoded (`Image.open` only reads the header),
decompression-bomb warnings are errors, EXIF orientation is applied and every mode is
converted to RGB explicitly.
"""

from __future__ import annotations

import functools
import io
import struct
import warnings
import zlib
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
# libspng (pyspng, in the guard extras) decodes 8-bit RGB PNGs to the same pixels in about 0.6x
# OpenCV's time (benchmarks/image_decoders.py) but holds the GIL while it decodes, stalling the
# event loop and the other request threads: it goes first for a call alone in the service,
# after OpenCV (when installed) otherwise, and only up to this size (about 20 ms of decoding
# on one core); larger PNGs go to OpenCV or Pillow, which let go of the GIL.
SPNG_MAX_PIXELS = 1 << 20
# Truncated files must fail, not decode into half-grey pictures.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@functools.cache
def _opencv() -> Any:
    """OpenCV when installed (the fast-decode extra installs it), imported on the first decode
    so that the SDK's import stays light; None: libspng and Pillow decode everything."""
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


def decode_image(
    data: bytes, limits: ImageLimits, *, draft_size: int | None = None, alone: bool = False
) -> Image.Image:
    """Decode `data` into an RGB image or raise InvalidInput / PayloadTooLarge naming why.

    `draft_size` lets JPEG decode at a reduced scale when the model needs far fewer pixels.
    `alone`: no other thread of the process has work meanwhile (a call alone in a service),
    so a decoder that holds the GIL (libspng) goes before one that lets go of it (OpenCV).
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
        fast = _decode_fast(img, data, alone)
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


def _decode_fast(img: Image.Image, data: bytes, alone: bool) -> Image.Image | None:
    """The pixels decoded by libspng or OpenCV where they are faster and the image is plain
    8-bit RGB with no alpha, palette, transparency or EXIF block (Pillow's path handles those);
    None to let Pillow decode it, also when they fail: Pillow then names the problem (a
    truncated file fails there rather than decoding partially). Called after the size checks."""
    if img.mode != "RGB" or "transparency" in img.info or "exif" in img.info:
        return None
    if img.format == "PNG":
        # One walk over the chunks: a damaged one, or an eXIf chunk (it may follow the pixels,
        # where the header cannot see it), leaves the file to Pillow.
        chunks = _png_chunk_types(data)
        if chunks is None or b"eXIf" in chunks:
            return None
    elif b"eXIf" in data:
        return None
    decoders = (_by_spng, _by_opencv) if alone else (_by_opencv, _by_spng)
    for decode in decoders:
        pixels = decode(img, data)
        if pixels is not None and pixels.shape == (img.height, img.width, 3):
            return Image.fromarray(pixels, mode="RGB")
    return None


def _by_opencv(img: Image.Image, data: bytes) -> np.ndarray | None:
    if img.format not in OPENCV_FORMATS or (cv2 := _opencv()) is None:
        return None
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def _by_spng(img: Image.Image, data: bytes) -> np.ndarray | None:
    """An 8-bit truecolour PNG (IHDR bit depth 8, colour type 2) decoded by libspng, or None."""
    if img.format != "PNG" or img.width * img.height > SPNG_MAX_PIXELS:
        return None
    if data[12:16] != b"IHDR" or data[24:26] != b"\x08\x02" or (spng := _spng()) is None:
        return None
    try:
        return spng.load(data, "RGB")
    except RuntimeError:  # pyspng's error for anything malformed
        return None


@functools.cache
def _spng() -> Any:
    """pyspng when installed (the guard extras install it); None: OpenCV or Pillow decode PNG."""
    try:
        import pyspng
    except ImportError:
        return None
    return pyspng


def _png_chunk_types(data: bytes) -> list[bytes] | None:
    """The chunk types of a PNG up to IEND, or None when a chunk is cut short or its CRC is
    wrong. pyspng has libspng skip the CRCs, where libpng refuses a damaged chunk: checked here,
    a damaged file takes the path it took before (0.07 ms for a 240 KB file)."""
    view = memoryview(data)
    types = []
    offset = 8
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        end = offset + 8 + length
        if end + 4 > len(data):
            return None
        if zlib.crc32(view[offset + 4 : end]) != struct.unpack_from(">I", data, end)[0]:
            return None
        types.append(bytes(view[offset + 4 : offset + 8]))
        if types[-1] == b"IEND":
            return types
        offset = end + 4
    return None


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
