"""A small demonstration training set made from real photos (the ones scikit-image ships, so
nothing is downloaded; needs scikit-image, in the dev extra): the "unsafe" feature, labelled O6,
is a red disk drawn onto a photo crop, and each pair is one crop with and without it. For
trying the training path end to end and for tests; not a safety dataset."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from safetypairs.contract.pair_record import Member, PairRecord, to_line

PHOTOS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
]
MORE_PHOTOS = ["camera.png", "page.png"]  # grayscale, for when more images are wanted


def sample_photos(count: int = len(PHOTOS)) -> list[Path]:
    """The sample photos of the demo set, the tests and the benchmarks, real photos that
    scikit-image ships in its wheel: the first `count` of PHOTOS (colour), then MORE_PHOTOS."""
    import skimage

    data = Path(skimage.__file__).parent / "data"
    return [data / name for name in [*PHOTOS, *MORE_PHOTOS][:count]]


def _crop(rng: random.Random, photos: list[Image.Image]) -> Image.Image:
    img = rng.choice(photos)
    side = rng.randint(96, min(img.size) - 1)
    x, y = rng.randint(0, img.size[0] - side), rng.randint(0, img.size[1] - side)
    return img.crop((x, y, x + side, y + side)).resize((128, 128))


def _with_disk(img: Image.Image, rng: random.Random) -> Image.Image:
    out = img.copy()
    r = rng.randint(18, 30)
    cx, cy = rng.randint(r, 128 - r), rng.randint(r, 128 - r)
    ImageDraw.Draw(out).ellipse((cx - r, cy - r, cx + r, cy + r), fill=(230, 20, 20))
    return out


def make_training_set(
    root: Path, pairs: int = 12, singles: int = 16, seed: int = 0
) -> tuple[Path, Path]:
    """Write images, `labelled.jsonl` and `pairs.jsonl` under `root`; return the two files."""
    rng = random.Random(seed)
    photos = [Image.open(path).convert("RGB") for path in sample_photos()]
    (root / "img").mkdir(parents=True, exist_ok=True)
    labelled, pair_lines = [], []
    for i in range(singles):
        img = _crop(rng, photos)
        unsafe = i % 2 == 0
        if unsafe:
            img = _with_disk(img, rng)
        name = f"img/single_{i:03d}.png"
        img.save(root / name)
        labelled.append({"image": name, "labels": ["O6"] if unsafe else []})
    for i in range(pairs):
        clean = _crop(rng, photos)
        a, b = f"img/pair_{i:03d}_a.png", f"img/pair_{i:03d}_b.png"
        clean.save(root / a)
        _with_disk(clean, rng).save(root / b)
        pair_lines.append(
            PairRecord(id=f"p{i}", a=Member(image=a, labels=()), b=Member(image=b, labels=("O6",)))
        )
    (root / "labelled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labelled))
    (root / "pairs.jsonl").write_text("".join(to_line(r) + "\n" for r in pair_lines))
    return root / "labelled.jsonl", root / "pairs.jsonl"
