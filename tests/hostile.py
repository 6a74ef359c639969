"""Bad image inputs, generated here (never downloaded)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A syntactically valid PNG header declaring width x height, with one tiny IDAT:
    opening it reads the size; decoding it would need width*height*3 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def noise(size: tuple[int, int] = (128, 128), fmt: str = "PNG", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def truncated(fmt: str) -> bytes:
    data = noise((128, 128), fmt)
    return data[: len(data) // 2]


def compressed_bomb(side: int = 3000) -> bytes:
    """A real, fully valid PNG of side x side black pixels: a few KB that decode to
    side*side*3 bytes (27 MB at 3000)."""
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


NOT_IMAGES = {
    "text": b"hello, this is not an image at all",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
    "html": b"<!DOCTYPE html><html><body>hi</body></html>",
    "pdf": b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n",
}
