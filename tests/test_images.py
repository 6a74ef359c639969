import io

import numpy as np
import pytest
from hostile import (
    ACCEPTED,
    CORPUS_MAX_BYTES,
    CORPUS_MAX_PIXELS,
    NOT_IMAGES,
    REFUSED,
    compressed_bomb,
    noise,
    png_declaring,
    truncated,
)
from PIL import Image

from safetypairs.contract import images
from safetypairs.contract.errors import InvalidInput, PayloadTooLarge
from safetypairs.contract.images import ImageLimits, decode_image

LIMITS = ImageLimits(max_bytes=4 * 1024 * 1024, max_pixels=4_000_000)


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_empty_bytes():
    with pytest.raises(InvalidInput, match=r"empty \(0 bytes\)"):
        decode_image(b"", LIMITS)


@pytest.mark.parametrize("kind", sorted(NOT_IMAGES))
def test_non_images_are_named(kind):
    with pytest.raises(InvalidInput, match="not a supported image") as err:
        decode_image(NOT_IMAGES[kind], LIMITS)
    if kind in ("svg", "html", "pdf"):
        assert "look like" in err.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_truncated_files_fail_instead_of_decoding_partially(fmt):
    with pytest.raises(InvalidInput, match=r"corrupt or truncated|not a supported"):
        decode_image(truncated(fmt), LIMITS)


def test_declared_size_checked_before_decoding():
    with pytest.raises(PayloadTooLarge, match="10000000000 pixels"):
        decode_image(png_declaring(100_000, 100_000), LIMITS)


def test_compressed_bomb_over_the_pixel_limit():
    data = compressed_bomb(3000)
    assert len(data) < 100_000  # tiny on the wire...
    with pytest.raises(PayloadTooLarge, match="3000x3000"):  # ...9 Mpx decoded
        decode_image(data, LIMITS)


def test_pillow_decompression_bomb_guard_is_an_error_too():
    generous = ImageLimits(max_bytes=LIMITS.max_bytes, max_pixels=10**12)
    with pytest.raises(PayloadTooLarge, match="decompression bomb"):
        decode_image(png_declaring(20_000, 20_000), generous)


def test_encoded_size_limit():
    with pytest.raises(PayloadTooLarge, match="over the limit of 1000 bytes"):
        decode_image(noise((64, 64)), ImageLimits(max_bytes=1000, max_pixels=10**6))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("L", (40, 30), 128),
        lambda: Image.new("CMYK", (40, 30), (0, 255, 255, 0)),
        lambda: Image.new("RGBA", (40, 30), (255, 0, 0, 128)),
        lambda: Image.new("LA", (40, 30), (90, 200)),
        lambda: Image.new("RGB", (40, 30), (1, 2, 3)).convert("P"),
        lambda: Image.new("1", (40, 30), 1),
    ],
)
def test_every_mode_becomes_rgb(make):
    img = make()
    fmt = "JPEG" if img.mode == "CMYK" else "PNG"
    out = decode_image(encode(img, fmt), LIMITS)
    assert out.mode == "RGB" and out.size == (40, 30)


def test_sixteen_bit_greyscale_keeps_its_range():
    arr = np.full((20, 20), 65535, dtype=np.uint16)
    arr[:, :10] = 0
    out = np.asarray(decode_image(encode(Image.fromarray(arr)), LIMITS))
    assert out[0, 15].tolist() == [255, 255, 255] and out[0, 0].tolist() == [0, 0, 0]


def test_transparency_is_composited_on_white():
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    out = np.asarray(decode_image(encode(img), LIMITS))
    assert out[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("alone", [False, True])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(fmt, alone):
    img = Image.new("RGB", (60, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = decode_image(encode(img, fmt, exif=exif.tobytes()), LIMITS, alone=alone)
    assert out.size == (20, 60)


@pytest.mark.parametrize("fmt", images.OPENCV_FORMATS)
def test_opencv_decodes_the_pixels_pillow_decodes(fmt, monkeypatch):
    """Where OpenCV decodes (faster, measured), the pixels are Pillow's exactly."""
    assert images._opencv() is not None, "opencv-python-headless: the dev extra has fast-decode"
    data = noise((97, 61), fmt)
    fast = np.asarray(decode_image(data, LIMITS))
    _only_pillow(monkeypatch)
    assert np.array_equal(fast, np.asarray(decode_image(data, LIMITS)))


def _only_pillow(monkeypatch) -> None:
    monkeypatch.setattr(images, "_opencv", lambda: None)
    monkeypatch.setattr(images, "_spng", lambda: None)


@pytest.mark.parametrize("interlace", [False, True])
def test_libspng_decodes_the_pixels_pillow_decodes(interlace, monkeypatch):
    """A call alone decodes 8-bit RGB PNGs with libspng (faster, measured): Pillow's pixels."""
    assert images._spng() is not None, "pyspng: the guard extra installs it"
    arr = np.random.default_rng(3).integers(0, 256, (61, 97, 3), dtype=np.uint8)
    data = encode(Image.fromarray(arr), "PNG", interlace=interlace)
    assert np.array_equal(images._by_spng(Image.open(io.BytesIO(data)), data), arr)
    fast = np.asarray(decode_image(data, LIMITS, alone=True))
    _only_pillow(monkeypatch)
    assert np.array_equal(fast, np.asarray(decode_image(data, LIMITS)))


def test_libspng_takes_only_plain_8_bit_rgb_pngs_up_to_its_size(monkeypatch):
    """Others go on to OpenCV or Pillow: 16-bit or palette PNGs, and PNGs large enough that
    libspng would hold the GIL for long."""
    monkeypatch.setattr(images, "SPNG_MAX_PIXELS", 64 * 64)
    wide = np.zeros((8, 8, 3), np.uint16)
    cases = {
        "16-bit grey": encode(Image.fromarray(wide.reshape(8, 24)).convert("I;16")),
        "palette": encode(Image.new("P", (8, 8))),
        "large": noise((65, 64), "PNG"),
    }
    for name, data in cases.items():
        assert images._by_spng(Image.open(io.BytesIO(data)), data) is None, name
    small = noise((64, 64), "PNG")
    assert images._by_spng(Image.open(io.BytesIO(small)), small) is not None


def test_a_png_with_a_damaged_chunk_decodes_alone_as_it_does_beside_others():
    """libspng (as pyspng sets it up) skips the chunk CRCs; a damaged file therefore takes the
    other decoders' path, with the same outcome whether the call is alone or not."""
    data = bytearray(noise((64, 48), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 40] ^= 0x01  # one bit of the compressed pixels: the CRC no longer matches
    outcomes = []
    for alone in (False, True):
        try:
            outcomes.append(np.asarray(decode_image(bytes(data), LIMITS, alone=alone)))
        except InvalidInput as exc:
            outcomes.append(exc.message)
    assert images._png_chunk_types(bytes(data)) is None
    assert type(outcomes[0]) is type(outcomes[1])
    if isinstance(outcomes[0], str):
        assert outcomes[0] == outcomes[1] and "corrupt" in outcomes[0]
    else:
        assert np.array_equal(outcomes[0], outcomes[1])


def test_animated_gif_uses_first_frame():
    frames = [Image.new("P", (16, 16), i) for i in range(50)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue(), LIMITS).size == (16, 16)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_corpus_is_refused_by_name(name):
    data, error, phrase = REFUSED[name]
    with pytest.raises(error) as err:
        decode_image(data, ImageLimits(CORPUS_MAX_BYTES, CORPUS_MAX_PIXELS))
    assert phrase in err.value.message


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_unusual_valid_images_decode_to_rgb(name):
    out = decode_image(ACCEPTED[name], ImageLimits(CORPUS_MAX_BYTES, CORPUS_MAX_PIXELS))
    assert out.mode == "RGB" and out.width * out.height > 0
