"""Bad image inputs, generated here (never downloaded)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from safetypairs.contract.errors import InvalidInput, PayloadTooLarge


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


def encoded(img: Image.Image, fmt: str = "PNG", **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def animated_gif(frames: int, side: int = 16) -> bytes:
    """An animated GIF of `frames` frames (a service reads the first only)."""
    first, *rest = (Image.new("P", (side, side), i % 256) for i in range(frames))
    return encoded(first, "GIF", save_all=True, append_images=rest)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    return encoded(Image.new("RGB", (64, 32), (0, 128, 0)), "JPEG", exif=exif.tobytes())


def _sixteen_bit() -> bytes:
    return encoded(Image.fromarray(np.full((64, 64), 40000, dtype=np.uint16)))


# Images a service must refuse, each with the error class and a phrase its message holds.
# The services under test (and CORPUS_LIMITS) allow at most 2 MiB per image and 4 Mpx.
CORPUS_MAX_BYTES, CORPUS_MAX_PIXELS = 2 * 1024 * 1024, 4_000_000
REFUSED = {
    "empty": (b"", InvalidInput, "empty (0 bytes)"),
    "text": (NOT_IMAGES["text"], InvalidInput, "not a supported image"),
    "svg": (NOT_IMAGES["svg"], InvalidInput, "look like SVG"),
    "html": (NOT_IMAGES["html"], InvalidInput, "look like HTML"),
    "pdf": (NOT_IMAGES["pdf"], InvalidInput, "look like PDF"),
    **{
        f"truncated_{fmt.lower()}": (truncated(fmt), InvalidInput, "truncated")
        for fmt in ("PNG", "JPEG", "WEBP", "GIF")
    },
    "over_pixel_limit": (png_declaring(100_000, 100_000), PayloadTooLarge, "10000000000 pixels"),
    "decompression_bomb": (compressed_bomb(3000), PayloadTooLarge, "3000x3000"),
    "over_byte_limit": (noise((1024, 1024)), PayloadTooLarge, "bytes, over the limit of"),
}

# Unusual but valid images a service must answer: decoded to RGB the same way everywhere.
ACCEPTED = {
    "animated_gif_3000_frames": animated_gif(3000),
    "sixteen_bit_grey": _sixteen_bit(),
    "cmyk_jpeg": encoded(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG"),
    "palette": encoded(Image.new("RGB", (64, 64), (1, 2, 3)).convert("P")),
    "alpha": encoded(Image.new("RGBA", (64, 64), (255, 0, 0, 128))),
    "grey": encoded(Image.new("L", (64, 64), 128)),
    "exif_rotated_jpeg": _exif_rotated(),
}


def check_http_refusal(reply, error: type, phrase: str) -> None:
    """An HTTP answer refusing a request: the error's status, kind, and `phrase` in the message."""
    assert reply.status_code == error.http_status.value, reply.text
    body = reply.json()["error"]
    assert body["kind"] == error.__name__ and phrase in body["message"], body
