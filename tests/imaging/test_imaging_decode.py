"""decode_image: formats, EXIF orientation, every Pillow mode, and refusal of hostile input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from factory import declared_png
from imaging_samples import encode, photo
from PIL import Image

from inspector.errors import InvalidArgument
from inspector.imaging.decode import decode_image


def _rgb(data: bytes, **limits) -> np.ndarray:
    image = decode_image(data, **limits)
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


@pytest.mark.parametrize("fmt,params,mean_error", [
    ("PNG", {}, 0), ("BMP", {}, 0), ("TIFF", {}, 0), ("WEBP", {"lossless": True}, 0),
    ("JPEG", {"quality": 98, "subsampling": 0}, 4),
])
def test_formats_decode_to_the_same_pixels(fmt, params, mean_error):
    pixels = photo(24, 40)
    got = _rgb(encode(pixels, fmt, **params))
    assert got.shape == (24, 40, 3)
    assert np.abs(got - pixels).mean() <= mean_error


def test_gif_first_frame_with_its_palette_colours():
    frames = [Image.fromarray(np.full((8, 8, 3), c, np.uint8)) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert (_rgb(data) == [255, 0, 0]).all()


def _quadrants(h: int, w: int) -> np.ndarray:
    """Four flat colour blocks: red top-left, green top-right, blue bottom-left, white bottom-right."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2:] = (0, 255, 0)
    a[h // 2:, : w // 2] = (0, 0, 255)
    a[h // 2:, w // 2:] = (255, 255, 255)
    return a


@pytest.mark.parametrize("orientation,turn", [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(orientation, turn):
    stored = _quadrants(32, 64)
    exif = Image.Exif()
    exif[0x0112] = orientation
    got = _rgb(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    expected = np.rot90(stored, k=turn)  # 6: stored image turned 90 degrees clockwise for display
    assert got.shape == expected.shape
    # compare block centres (JPEG blurs the edges)
    h, w = expected.shape[:2]
    for y, x in ((h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4)):
        assert np.abs(got[y, x] - expected[y, x]).max() < 24, (y, x)


def test_mode_1_and_L_become_gray_rgb():
    bits = np.zeros((4, 6), bool)
    bits[1, 2] = True
    got = _rgb(encode(Image.fromarray(bits)))
    assert got[1, 2].tolist() == [255, 255, 255] and got[0, 0].tolist() == [0, 0, 0]
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    assert (_rgb(encode(gray)) == gray[:, :, None]).all()


def test_palette_image_keeps_its_colours_and_transparency_is_white():
    image = Image.new("P", (4, 2))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    got = _rgb(encode(image))
    assert got[0, 0].tolist() == [10, 20, 30] and got[0, 1].tolist() == [200, 100, 50]
    got = _rgb(encode(image, transparency=0))
    assert got[0, 0].tolist() == [255, 255, 255] and got[0, 1].tolist() == [200, 100, 50]


def test_alpha_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[0, 1] = (10, 20, 30, 0)
    rgba[1, 0] = (100, 0, 200, 128)
    got = _rgb(encode(rgba))
    a = 128 / 255
    expected = np.array([10 * 1.0, 20, 30]), np.full(3, 255), np.array([100, 0, 200]) * a + 255 * (1 - a)
    for (y, x), want in zip(((0, 0), (0, 1), (1, 0)), expected, strict=True):
        assert np.abs(got[y, x] - want).max() <= 1
    la = Image.fromarray(np.array([[[40, 255], [40, 64]]], np.uint8), "LA")
    got = _rgb(encode(la))
    assert got[0, 0].tolist() == [40] * 3
    assert abs(got[0, 1, 0] - (40 * 64 / 255 + 255 * (1 - 64 / 255))) <= 1


def test_cmyk_converts_to_rgb():
    cmyk = np.zeros((1, 4, 4), np.uint8)
    cmyk[0, 0] = (255, 0, 0, 0)  # cyan
    cmyk[0, 1] = (0, 255, 0, 0)  # magenta
    cmyk[0, 2] = (0, 0, 0, 255)  # black
    cmyk[0, 3] = (0, 0, 0, 0)  # white paper
    got = _rgb(encode(Image.fromarray(cmyk, "CMYK"), "TIFF"))
    assert got[0].tolist() == [[0, 255, 255], [255, 0, 255], [0, 0, 0], [255, 255, 255]]


def test_16_bit_gray_keeps_its_absolute_scale():
    a = np.array([[0, 257 * 128, 65535, 1000]], np.uint16)
    image = Image.fromarray(a)
    assert image.mode == "I;16"
    got = _rgb(encode(image))
    assert got[0, :, 0].tolist() == [0, 128, 255, round(1000 / 257)]
    assert (got[..., 0] == got[..., 2]).all()


def test_float_images_scale_to_8_bit():
    unit = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert _rgb(encode(Image.fromarray(unit), "TIFF"))[0, :, 1].tolist() == [0, 128, 255]
    wide = np.array([[-1.0, 1.0, 3.0]], np.float32)  # not in [0, 1]: stretched min..max
    assert _rgb(encode(Image.fromarray(wide), "TIFF"))[0, :, 1].tolist() == [0, 128, 255]


@pytest.mark.parametrize("width,height", [(100_000, 100_000), (10_000, 6_000)])
def test_declared_giant_images_are_refused(width, height):
    data = declared_png(width, height)
    assert len(data) < 200
    with pytest.raises(InvalidArgument, match="bomb|pixel"):
        decode_image(data)


def test_pixel_and_byte_limits():
    data = encode(photo(100, 100))
    assert decode_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(InvalidArgument, match="100x100 = 10,000 pixels"):
        decode_image(data, max_pixels=9_999)
    with pytest.raises(InvalidArgument, match="bytes, over the"):
        decode_image(data, max_bytes=len(data) - 1)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused(fmt):
    data = encode(photo(64, 64), fmt)
    with pytest.raises(InvalidArgument, match="truncated|could not|not an image"):
        decode_image(data[: len(data) // 2])


@pytest.mark.parametrize("data", [b"", b"hello, not an image", np.random.default_rng(1).bytes(4096)])
def test_garbage_is_refused(data):
    with pytest.raises(InvalidArgument, match="empty|not an image"):
        decode_image(data)


def test_eps_is_not_even_identified():
    """Pillow would hand EPS to Ghostscript; client bytes must never reach a subprocess."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert Image.open(io.BytesIO(eps)).format == "EPS"
    with pytest.raises(InvalidArgument, match="not an image in a supported format"):
        decode_image(eps)
