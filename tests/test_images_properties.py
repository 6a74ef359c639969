"""Property-based tests of the image decoder: whatever the bytes, the answer is an RGB image or
one of the two input errors, never a crash or a hang."""

import io

import numpy as np
from hostile import noise
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from safetypairs.contract.errors import InvalidInput, PayloadTooLarge
from safetypairs.contract.images import ImageLimits, decode_image

LIMITS = ImageLimits(max_bytes=1 << 20, max_pixels=1 << 20)
SEED_IMAGES = [
    noise((32, 24), fmt, seed=i)
    for i, fmt in enumerate(("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"))
]


def _decoded(data: bytes, alone: bool):
    try:
        img = decode_image(data, LIMITS, alone=alone)
    except (InvalidInput, PayloadTooLarge) as exc:
        assert exc.message
        return type(exc)
    assert img.mode == "RGB" and img.size[0] >= 1 and img.size[1] >= 1
    return np.asarray(img)


def outcome(data: bytes):
    """The same outcome whether the call is alone (libspng first for PNG) or not (OpenCV
    first): one input error, or the same pixels."""
    beside, alone = _decoded(data, False), _decoded(data, True)
    if isinstance(beside, np.ndarray):
        assert isinstance(alone, np.ndarray) and np.array_equal(beside, alone)
        return Image.Image
    assert alone is beside
    return beside


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data):
    outcome(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEED_IMAGES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    st.integers(0, 10_000),
)
def test_corrupted_real_images(image, flips, cut):
    """Real encoded images with bytes flipped and the tail cut: decoded or refused cleanly."""
    data = bytearray(image)
    for pos, value in flips:
        data[pos % len(data)] = value
    outcome(bytes(data[: max(1, len(data) - cut % len(data))]))


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]),
    st.integers(1, 300),
    st.integers(1, 300),
    st.sampled_from(["PNG", "TIFF", "WEBP", "JPEG", "GIF", "BMP"]),
)
def test_valid_images_of_any_mode_become_rgb(mode, width, height, fmt):
    img = Image.new(mode, (width, height))
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode: nothing to decode
    decoded = decode_image(buf.getvalue(), LIMITS)
    assert decoded.mode == "RGB" and decoded.size == (width, height)
