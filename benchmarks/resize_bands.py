"""The guard's resize (guard/resize.py) against Pillow's resize-then-crop, for each input spec
the guard serves, on the photos scikit-image ships:

    python benchmarks/resize_bands.py [--calls 300]

Three ways, called in turn (one call each) so machine noise hits them alike: Pillow's
`resize(...).crop(...)`, the guard's resize in one band (a call side by side with others:
only the crop's window, where the sizes allow), and in bands on the request threads (a call
alone: one band per usable core). Printed: Pillow's median ms and the guard's medians as ratios
to it, and whether all three give the same pixels.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import skimage
from PIL import Image

from safetypairs.guard.preprocess import resize_for
from safetypairs.guard.resize import Beside, resize
from safetypairs.guard.sidecar import GuardInput
from safetypairs.serving.cores import usable_cores

# The guard's three input specs, as a sidecar gives them (mean and std do not enter the resize).
SPECS = {
    name: GuardInput("x", 224, (0.5,) * 3, (0.5,) * 3, resize=kind, resize_to=to)
    for name, kind, to in (
        ("shorter_side_center_crop", "shorter_side_center_crop", 0),
        ("squash_center_crop 256", "squash_center_crop", 256),
        ("squash", "squash", 0),
    )
}


def pillow(photo: Image.Image, size, resample, gap, crop) -> Image.Image:
    return photo.resize(size, resample, reducing_gap=gap).crop(crop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    threads = usable_cores()
    data_dir = Path(skimage.__file__).parent / "data"
    print(
        f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}, "
        f"{threads} usable cores"
    )
    print("| photo | spec | resize | Pillow ms | one band / Pillow | bands / Pillow | same |")
    print("|---|---|---|---|---|---|---|")
    with ThreadPoolExecutor(threads) as pool:
        beside = Beside(pool, threads)
        for name in ("chelsea.png", "astronaut.png", "coffee.png"):
            photo = Image.open(data_dir / name).convert("RGB")
            for spec, guard_input in SPECS.items():
                size, resample, gap, crop = resize_for(photo.size, guard_input)
                crop = crop or (0, 0, *size)
                pass_ = (photo, size, resample)
                ways = {
                    "pillow": partial(pillow, *pass_, gap, crop),
                    "one": partial(resize, *pass_, reducing_gap=gap, crop=crop),
                    "bands": partial(resize, *pass_, reducing_gap=gap, crop=crop, beside=beside),
                }
                times: dict[str, list[float]] = {key: [] for key in ways}
                for _ in range(args.calls):
                    for key, fn in ways.items():
                        started = time.perf_counter()
                        fn()
                        times[key].append(time.perf_counter() - started)
                ms = {key: statistics.median(t) * 1e3 for key, t in times.items()}
                pixels = [np.asarray(fn()) for fn in ways.values()]
                same = all(np.array_equal(pixels[0], p) for p in pixels[1:])
                print(
                    f"| {name} {photo.width}x{photo.height} | {spec} | {size[0]}x{size[1]} "
                    f"| {ms['pillow']:.2f} | {ms['one'] / ms['pillow']:.2f} "
                    f"| {ms['bands'] / ms['pillow']:.2f} | {same} |"
                )


if __name__ == "__main__":
    main()
