"""The guard's resize (guard/resize.py): the passes one at a time give Pillow 13's pixels, a
window around the crop gives the pixels of the whole image cropped, and bands on other threads
give the same pixels as one band."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import PIL
import pytest
from PIL import Image

from safetypairs.guard.preprocess import preprocess, resize_for
from safetypairs.guard.resize import Beside, resize
from safetypairs.guard.sidecar import GuardInput

BICUBIC = Image.Resampling.BICUBIC
# The guard's three input specs, as a sidecar gives them.
SPECS = {
    kind: GuardInput("x", 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), resize=kind, resize_to=to)
    for kind, to in (("shorter_side_center_crop", 0), ("squash", 0), ("squash_center_crop", 256))
}


def _targets(w: int, h: int):
    """What each spec resizes a (w, h) image to, and the crop it keeps (preprocess's own)."""
    return [resize_for((w, h), spec) for spec in SPECS.values()]


def _sizes(count: int, seed: int):
    """Random source sizes: photos, thin strips, images smaller than the target (upscaled) and
    large ones that Pillow first reduces by an integer factor."""
    rng = np.random.default_rng(seed)
    fixed = [(451, 300), (300, 451), (120, 90), (2000, 160), (160, 2000), (3000, 3000)]
    return fixed + [tuple(int(v) for v in rng.integers(40, 3000, 2)) for _ in range(count)]


def _noise(w: int, h: int, seed: int) -> Image.Image:
    # Noise: every pixel differs from its neighbours, so any change of weight or rounding shows.
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8))


class CountingPool(ThreadPoolExecutor):
    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.handed = 0

    def submit(self, fn, /, *args, **kwargs):
        self.handed += 1
        return super().submit(fn, *args, **kwargs)


def _pixels(img: Image.Image, size, resample, gap, crop, beside=None) -> np.ndarray:
    return np.asarray(resize(img, size, resample, reducing_gap=gap, crop=crop, beside=beside))


@pytest.mark.parametrize("threads", [2, 3])
def test_bands_give_the_pixels_of_one(threads):
    with CountingPool(threads) as pool:
        beside = Beside(pool, threads)
        for i, (w, h) in enumerate(_sizes(40, seed=threads)):
            img = _noise(w, h, seed=i)
            for size, resample, gap, crop in _targets(w, h):
                whole = _pixels(img, size, resample, gap, crop)
                banded = _pixels(img, size, resample, gap, crop, beside)
                assert np.array_equal(whole, banded), (w, h, size)
        # Most sizes have rows to cut at (each resize above with a cut hands bands over).
        assert pool.handed > 3 * 46 * (threads - 1) // 2


def test_a_window_gives_the_pixels_of_the_whole_cropped():
    for i, (w, h) in enumerate(_sizes(40, seed=5)):
        img = _noise(w, h, seed=i)
        for size, resample, gap, crop in _targets(w, h):
            if crop:
                whole = resize(img, size, resample, reducing_gap=gap).crop(crop)
                assert np.array_equal(np.asarray(whole), _pixels(img, size, resample, gap, crop))


@pytest.mark.skipif(
    PIL.__version__.split(".")[0] != "13",
    reason=f"the pass order is Pillow 13's; Pillow {PIL.__version__} orders its own passes "
    "otherwise, so its resize differs by a level at some pixels",
)
def test_the_passes_give_pillow_13s_pixels():
    for i, (w, h) in enumerate(_sizes(60, seed=7)):
        img = _noise(w, h, seed=i)
        for size, resample, gap, crop in _targets(w, h):
            pillow = img.resize(size, resample, reducing_gap=gap)
            ours = _pixels(img, size, resample, gap, None)
            assert np.array_equal(np.asarray(pillow), ours), (w, h, size)
            if crop:
                cropped = np.asarray(pillow.crop(crop))
                assert np.array_equal(cropped, _pixels(img, size, resample, gap, crop))


def test_the_benchmark_photo_is_resampled_in_two_bands_of_its_crop(sample_photos):
    img = Image.open(sample_photos[0]).convert("RGB").resize((451, 300))
    crop = (56, 0, 280, 224)  # shorter side 300 -> 224, width 451 -> 337
    with CountingPool(2) as pool:
        banded = _pixels(img, (337, 224), BICUBIC, 3.0, crop, Beside(pool, 2))
        assert pool.handed == 1
    expected = resize(img, (337, 224), BICUBIC).crop(crop)
    assert np.array_equal(banded, np.asarray(expected))


def test_a_band_no_thread_takes_runs_in_the_caller():
    """Every thread of the pool is taken (calls came in meanwhile): the caller does the band
    itself instead of waiting behind them."""
    img = _noise(451, 300, seed=1)
    release = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(release.wait)
        try:
            banded = resize(img, (336, 224), BICUBIC, beside=Beside(pool, 2))
        finally:
            release.set()
    assert np.array_equal(np.asarray(banded), np.asarray(resize(img, (336, 224), BICUBIC)))


@pytest.mark.parametrize("kind", list(SPECS))
def test_preprocess_gives_one_tensor_with_or_without_threads_beside(kind):
    img = _noise(640, 480, seed=3)
    with ThreadPoolExecutor(2) as pool:
        banded = preprocess(img, SPECS[kind], Beside(pool, 2))
    assert np.array_equal(preprocess(img, SPECS[kind]), banded)
