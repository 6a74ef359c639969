"""Pillow's resampling, one pass at a time, of only the output rows and columns a crop keeps,
optionally cut into bands of rows that idle threads resample side by side (a call alone in the
service, guard/runtime.py).

Why the passes are ours. Pillow resamples in two passes, each rounded to 8 bits, so their
order shows in the pixels (one level here and there). Pillow up to 12 always ran the
horizontal pass first; Pillow 13 runs the vertical one first when the height shrinks by more
than twice as many pixels as the width. Each pass here is a one-axis Pillow resize, in
Pillow 13's order: the pixels equal Pillow 13's `resize`, and Pillow's own choice of order no
longer enters, so a guard served on one Pillow the guard allows (>= 10.3) and trained on
another should see the same tensor (only Pillow 13 is installed and tested here).

Why windows and bands are exact. An output pixel's filter weights depend only on where its
centre falls in the source, so a window of output rows and columns resampled on its own gets
the weights the whole image would give it, provided Pillow receives the window's edges
exactly: its box is float32, so a window may start or end only at an output position k whose
source edge, k * source extent / output extent, a float32 holds (every multiple of a step
that depends on the two extents; 0 and the full extent always). For the chelsea photo, 451x300
to 337x224, the bands meet at row 112 (source row 150); no column but 0 and 337 has an exact
edge there, so all 337 are resampled before the crop to 224. Resizes to a power of two, as
the open_nsfw member's 256x256 before its 224 crop, resample only the crop's columns and
rows. Where no such position lies near a band's place, the resize runs in fewer bands.
tests/test_resize.py holds these claims against Pillow on random sizes.
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
from concurrent.futures import Executor
from dataclasses import dataclass
from fractions import Fraction

from PIL import Image

# Half-widths of Pillow's filters, in source pixels at scale 1 (libImaging/Resample.c).
_SUPPORT = {
    Image.Resampling.BOX: 0.5,
    Image.Resampling.BILINEAR: 1.0,
    Image.Resampling.HAMMING: 1.0,
    Image.Resampling.BICUBIC: 2.0,
    Image.Resampling.LANCZOS: 3.0,
}
MIN_BAND_ROWS = 32  # below this a band's hand-over to another thread costs more than it saves


@dataclass(frozen=True)
class Beside:
    """Threads of the process with nothing else to do (`threads` of them in `pool`, the caller's
    own counted): a resize may hand bands to them."""

    pool: Executor
    threads: int


def _float32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


@dataclass(frozen=True)
class _Axis:
    """One axis of a resize: `out` output positions over the first `extent` source pixels (a
    float32, as Pillow's box holds it) of a source `pixels` long."""

    pixels: int
    extent: Fraction
    out: int
    support: float  # the filter's half-width at scale 1

    def edge(self, k: int) -> Fraction:
        """Where output position k starts in the source."""
        return k * self.extent / self.out

    def holds(self, k: int) -> bool:
        edge = self.edge(k)
        return Fraction(_float32(float(edge))) == edge

    @functools.cached_property
    def step(self) -> int:
        """Edges are dyadic (what a float32 can hold, given enough bits) exactly at the
        multiples of this: k * p / (q * out), q a power of two, p / q the extent."""
        odd = self.out // (self.out & -self.out)
        return odd // math.gcd(odd, self.extent.numerator)

    def exact(self, k0: int, k1: int) -> bool:
        """Pillow gets output span [k0, k1)'s source edges and length (its box's float32
        difference) exactly."""
        return self.holds(k0) and self.holds(k1) and self.holds(k1 - k0)

    def window(self, k0: int, k1: int) -> tuple[int, int]:
        """[k0, k1) widened to the nearest span Pillow gets exactly; at worst the whole."""
        lo, hi = k0 - k0 % self.step, min(self.out, k1 + -k1 % self.step)
        spans = ((lo, hi), (0, hi), (lo, self.out), (0, self.out))
        return next(span for span in spans if self.exact(*span))

    def cut(self, k: int, lo: int, hi: int) -> int | None:
        """A position strictly between lo and hi, near k, that splits [lo, hi) into two spans
        Pillow gets exactly; or None."""
        below = k - k % self.step
        for cut in sorted((below, below + self.step), key=lambda c: abs(c - k)):
            if lo < cut < hi and self.exact(lo, cut) and self.exact(cut, hi):
                return cut
        return None

    @functools.cached_property
    def reach(self) -> int:
        """Source pixels beyond its own edges an output span reads: the filter's half-width
        at this scale, and slack for Pillow's rounding of where it starts."""
        return math.ceil(self.support * max(float(self.extent) / self.out, 1.0)) + 2

    def source(self, k0: int, k1: int) -> tuple[int, int]:
        """The source pixels output positions [k0, k1) read (a superset)."""
        first = max(0, math.floor(self.edge(k0)) - self.reach)
        return first, min(self.pixels, math.ceil(self.edge(k1)) + self.reach)


Box = tuple[float, float, float, float]
Pass = tuple[tuple[int, int], Box]  # one Pillow resize: its size and box


@dataclass(frozen=True)
class _Band:
    """Rows of the window from `top` on: the part of the source they read, and the two
    one-axis resizes that make them from it."""

    top: int
    part: tuple[int, int, int, int]
    passes: tuple[Pass, Pass]


@dataclass(frozen=True)
class _Plan:
    window: tuple[int, int, int, int]  # the output pixels resampled, around the crop
    bands: tuple[_Band, ...]


def _box(*edges: Fraction | int) -> Box:
    """A Pillow box from edges a float32 holds exactly."""
    x0, y0, x1, y1 = (float(e) for e in edges)
    return x0, y0, x1, y1


@functools.lru_cache(maxsize=4096)
def _plan(
    source: tuple[int, int],
    extent: tuple[float, float],
    size: tuple[int, int],
    crop: tuple[int, int, int, int],
    support: float,
    parts: int,
) -> _Plan:
    """How to resample `crop` of a `size` resize of the first `extent` pixels of a `source`
    image in up to `parts` bands. Cached: photos come in few sizes, and this is 0.1 ms of
    fractions."""
    xs = _Axis(source[0], Fraction(_float32(extent[0])), size[0], support)
    ys = _Axis(source[1], Fraction(_float32(extent[1])), size[1], support)
    left, top, right, bottom = crop
    (c0, c1), (r0, r1) = xs.window(left, right), ys.window(top, bottom)
    cols, (x0, x1) = c1 - c0, (xs.edge(c0), xs.edge(c1))
    # Pillow 13's order (ImagingResampleInner), from the whole resize's sizes.
    shrink_y, shrink_x = source[1] - size[1], source[0] - size[0]
    vertical_first = shrink_y > 0 and shrink_y > 2 * shrink_x

    def band(a: int, b: int) -> _Band:
        rows, (y0, y1) = b - a, (ys.edge(a), ys.edge(b))
        if vertical_first:
            first, last = xs.source(c0, c1)
            tall = ((last - first, rows), _box(0, y0, last - first, y1))
            wide = ((cols, rows), _box(x0 - first, 0, x1 - first, rows))
            return _Band(a - r0, (first, 0, last, source[1]), (tall, wide))
        first, last = ys.source(a, b)
        wide = ((cols, last - first), _box(x0, 0, x1, last - first))
        tall = ((cols, rows), _box(0, y0 - first, cols, y1 - first))
        return _Band(a - r0, (0, first, source[0], last), (wide, tall))

    edges, parts = [r0], min(parts, (r1 - r0) // MIN_BAND_ROWS)
    for i in range(1, parts):
        cut = ys.cut(r0 + (r1 - r0) * i // parts, edges[-1], r1)
        if cut is not None:
            edges.append(cut)
    edges.append(r1)
    return _Plan((c0, r0, c1, r1), tuple(band(a, b) for a, b in itertools.pairwise(edges)))


def _reduced(
    img: Image.Image, size: tuple[int, int], reducing_gap: float | None
) -> tuple[Image.Image, float, float]:
    """Pillow's first step for a large reduction (Image.resize): an integer box reduction of
    the whole image; the source box (width, height) the resampling then covers."""
    width, height = img.size
    if reducing_gap is not None:
        fx = int(width / size[0] / reducing_gap) or 1
        fy = int(height / size[1] / reducing_gap) or 1
        if fx > 1 or fy > 1:
            return img.reduce((fx, fy)), width / fx, height / fy
    return img, float(width), float(height)


def _resampled(img: Image.Image, band: _Band, resample: Image.Resampling) -> Image.Image:
    out = img if band.part == (0, 0, *img.size) else img.crop(band.part)
    for size, box in band.passes:
        out = out.resize(size, resample, box)
    return out


def resize(
    img: Image.Image,
    size: tuple[int, int],
    resample: Image.Resampling,
    *,
    reducing_gap: float | None = None,
    crop: tuple[int, int, int, int] | None = None,
    beside: Beside | None = None,
) -> Image.Image:
    """`img.resize(size, resample, reducing_gap=reducing_gap).crop(crop)` as Pillow 13
    computes it, for RGB and L images, resampling little more than the crop; with `beside`,
    in bands of rows, one per idle thread."""
    img, extent_w, extent_h = _reduced(img, size, reducing_gap)
    crop = crop or (0, 0, *size)
    parts = beside.threads if beside else 1
    plan = _plan(img.size, (extent_w, extent_h), size, crop, _SUPPORT[resample], parts)
    c0, r0, c1, r1 = plan.window
    first, *rest = plan.bands
    if not rest or beside is None:
        window = _resampled(img, first, resample)
    else:
        handed = [beside.pool.submit(_resampled, img, band, resample) for band in rest]
        window = Image.new(img.mode, (c1 - c0, r1 - r0))
        window.paste(_resampled(img, first, resample), (0, 0))
        for band, future in zip(rest, handed, strict=True):
            # Not started yet (the threads were taken after all): this thread does it,
            # rather than wait behind another call's work.
            done = _resampled(img, band, resample) if future.cancel() else future.result()
            window.paste(done, (0, band.top))
    if crop == plan.window:
        return window
    left, top, right, bottom = crop
    return window.crop((left - c0, top - r0, right - c0, bottom - r0))
