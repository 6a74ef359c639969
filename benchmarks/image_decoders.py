"""Pillow against OpenCV (opencv-python-headless) for decoding the guard's images, per format:
the guard decodes with whichever measured faster here (contract/images.py says which).

    python benchmarks/image_decoders.py [--calls 300]

Both decode the same bytes to 8-bit RGB; the two are called alternately (one call each, in
turn) so machine noise hits them alike, and the ratio of medians is printed per format with
whether the pixels are identical. Needs opencv-python-headless (a benchmark-only install).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one request, one thread: as the guard's request threads decode
    data_dir = Path(skimage.__file__).parent / "data"
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print("| image | format | Pillow ms | OpenCV ms | OpenCV / Pillow | same pixels |")
    print("|---|---|---|---|---|---|")
    for name in ("chelsea.png", "astronaut.png", "coffee.png"):
        photo = Image.open(data_dir / name).convert("RGB")
        for fmt, data in encoded(photo).items():
            times: dict[str, list[float]] = {"pil": [], "cv": []}
            for _ in range(args.calls):
                for key, fn in (("pil", pillow), ("cv", opencv)):
                    started = time.perf_counter()
                    fn(data)
                    times[key].append(time.perf_counter() - started)
            pil_ms = statistics.median(times["pil"]) * 1e3
            cv_ms = statistics.median(times["cv"]) * 1e3
            same = np.array_equal(pillow(data), opencv(data))
            size = f"{name} {photo.width}x{photo.height}"
            print(
                f"| {size} | {fmt} | {pil_ms:.2f} | {cv_ms:.2f} | {cv_ms / pil_ms:.2f} | {same} |"
            )
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
