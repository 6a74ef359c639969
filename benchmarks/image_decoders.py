"""Pillow against OpenCV (opencv-python-headless) and, for PNG, libspng (pyspng) for decoding
the guard's images, per format: the guard decodes with whichever measured faster here
(contract/images.py says which).

    python benchmarks/image_decoders.py [--calls 300]

All decode the same bytes to 8-bit RGB; they are called alternately (one call each, in turn)
so machine noise hits them alike, and the ratios of medians to Pillow's are printed per format
with whether the pixels are identical. Needs opencv-python-headless (the fast-decode extra).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import pyspng
import skimage
from PIL import Image


def encoded(photo: Image.Image) -> dict[str, bytes]:
    out = {}
    for fmt, options in (("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {}), ("BMP", {})):
        buf = io.BytesIO()
        photo.save(buf, format=fmt, **options)
        out[fmt] = buf.getvalue()
    return out


def pillow(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.load()
    return np.asarray(img.convert("RGB"))


def opencv(data: bytes) -> np.ndarray:
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def libspng(data: bytes) -> np.ndarray:
    return pyspng.load(data, "RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one request, one thread: as the guard's request threads decode
    data_dir = Path(skimage.__file__).parent / "data"
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print("| image | format | Pillow ms | OpenCV / Pillow | libspng / Pillow | same pixels |")
    print("|---|---|---|---|---|---|")
    for name in ("chelsea.png", "astronaut.png", "coffee.png"):
        photo = Image.open(data_dir / name).convert("RGB")
        for fmt, data in encoded(photo).items():
            decoders = {"pil": pillow, "cv": opencv}
            if fmt == "PNG":
                decoders["spng"] = libspng
            times: dict[str, list[float]] = {key: [] for key in decoders}
            for _ in range(args.calls):
                for key, fn in decoders.items():
                    started = time.perf_counter()
                    fn(data)
                    times[key].append(time.perf_counter() - started)
            ms = {key: statistics.median(t) * 1e3 for key, t in times.items()}
            reference = pillow(data)
            same = all(np.array_equal(reference, fn(data)) for fn in decoders.values())
            spng = f"{ms['spng'] / ms['pil']:.2f}" if "spng" in ms else "-"
            size = f"{name} {photo.width}x{photo.height}"
            print(
                f"| {size} | {fmt} | {ms['pil']:.2f} | {ms['cv'] / ms['pil']:.2f} | {spng} "
                f"| {same} |"
            )
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
