"""resolve_spec / preprocess_images / to_display against hand-computed numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from imaging_samples import encode, photo
from PIL import Image

from inspector.domain import PreprocessSpec, TensorInfo
from inspector.errors import InvalidArgument
from inspector.imaging.preprocess import preprocess_images, resolve_spec, to_display

NCHW_32 = TensorInfo("input", "float32", ("N", 3, 32, 32))
FREE = TensorInfo("x", "float32", ("N", 3, "H", "W"))
NHWC_FREE = TensorInfo("x", "float32", (None, None, None, 3))
IMAGENET = PreprocessSpec(resize=40, crop=(32, 32), mean=(0.485, 0.456, 0.406),
                          std=(0.229, 0.224, 0.225))


def test_defaults_come_from_the_input():
    spec = resolve_spec(None, NCHW_32)
    assert (spec.resize, spec.crop, spec.layout, spec.dtype, spec.channels) == (
        (32, 32), None, "NCHW", "float32", 3)
    assert spec.scale == pytest.approx(1 / 255) and spec.mean == (0, 0, 0) and spec.std == (1, 1, 1)
    nhwc = resolve_spec(None, TensorInfo("x", "float16", (1, 224, 200, 3)))
    assert (nhwc.layout, nhwc.resize, nhwc.dtype) == ("NHWC", (224, 200), "float16")
    assert resolve_spec(None, TensorInfo("x", "uint8", (1, 3, 8, 8))).scale == 1.0
    gray = resolve_spec(PreprocessSpec(mean=(0.5,)), TensorInfo("x", "float32", (1, 1, 8, 8)))
    assert (gray.channels, gray.mean, gray.std) == (1, (0.5,), (1.0,))


def test_proto_shaped_values_are_accepted():
    spec = resolve_spec(PreprocessSpec(resize=[np.int64(36)], crop=[32], mean=(), std=(),
                                       channel_order="bgr", layout="", dtype="", scale=None),
                        NCHW_32)
    assert (spec.resize, spec.crop, spec.mean, spec.std) == (36, (32, 32), (0,) * 3, (1,) * 3)
    assert (spec.channel_order, spec.layout, spec.dtype) == ("BGR", "NCHW", "float32")
    assert spec.scale == pytest.approx(1 / 255)
    # integer inputs take raw pixels unless a scale other than the default is given
    uint8 = TensorInfo("x", "uint8", (1, 3, 32, 32))
    assert resolve_spec(PreprocessSpec(resize=32), uint8).scale == 1.0
    assert resolve_spec(PreprocessSpec(scale=0.5), uint8).scale == 0.5


@pytest.mark.parametrize("spec,info,match", [
    (None, FREE, "no fixed height/width"),
    (PreprocessSpec(channel_order="RGBA"), NCHW_32, "channel_order"),
    (PreprocessSpec(mean=(0.1, 0.2)), NCHW_32, "mean has 2 values"),
    (PreprocessSpec(std=(1.0, 0.0, 1.0)), NCHW_32, "std"),
    (PreprocessSpec(layout="NCWH"), NCHW_32, "layout"),
    (PreprocessSpec(resize=0), NCHW_32, "resize"),
    (PreprocessSpec(resize=(1, 2, 3)), NCHW_32, "resize"),
    (PreprocessSpec(crop=2.5), NCHW_32, "crop"),
    (PreprocessSpec(scale=float("nan")), NCHW_32, "scale"),
    (PreprocessSpec(dtype="bool"), NCHW_32, "dtype"),
    (None, TensorInfo("x", "float32", (1, 3, 32)), "rank 3"),
    (None, TensorInfo("x", "float32", (1, 5, 8, 8)), "layout"),
    (PreprocessSpec(layout="NCHW"), TensorInfo("x", "float32", (1, 4, 8, 8)), "4 channels"),
])
def test_bad_specs_are_refused_early(spec, info, match):
    with pytest.raises(InvalidArgument, match=match):
        resolve_spec(spec, info)


def test_resize_crop_mean_std_match_a_pil_numpy_reference():
    pixels = photo(50, 70, seed=3)
    x = preprocess_images([encode(pixels)], resolve_spec(IMAGENET, NCHW_32))
    # by hand: short side 50 -> 40, long 70 -> int(40 * 70 / 50) = 56; crop 32x32 at
    # top = round((40 - 32) / 2) = 4, left = round((56 - 32) / 2) = 12
    resized = np.asarray(Image.fromarray(pixels).resize((56, 40), Image.Resampling.BILINEAR))
    crop = resized[4:36, 12:44].astype(np.float32) / 255
    ref = ((crop - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)[None]
    assert x.dtype == np.float32 and x.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(x, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("w,h,size,expected_hw", [
    (640, 480, 256, (256, 341)),  # int(256 * 640 / 480) = int(341.33)
    (480, 640, 224, (298, 224)),  # int(224 * 640 / 480) = int(298.67)
    (500, 333, 224, (224, 336)),  # int(224 * 500 / 333) = int(336.34)
    (333, 500, 224, (336, 224)),
    (101, 100, 32, (32, 32)),     # int(32 * 101 / 100) = int(32.32)
    (100, 3, 10, (10, 333)),      # int(10 * 100 / 3) = int(333.33)
    (64, 64, 64, (64, 64)),
])
def test_shorter_side_resize_rounds_like_torchvision(w, h, size, expected_hw):
    data = encode(np.zeros((h, w, 3), np.uint8))
    x = preprocess_images([data], resolve_spec(PreprocessSpec(resize=size), NHWC_FREE))
    assert x.shape == (1, *expected_hw, 3)


def _coordinates(h: int, w: int) -> np.ndarray:
    """R = row, G = column: a pixel tells where it came from."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy, xx, np.zeros_like(yy)], -1).astype(np.uint8)


@pytest.mark.parametrize("h,w,top,left", [(35, 34, 2, 1), (33, 33, 0, 0), (37, 32, 2, 0), (36, 40, 2, 4)])
def test_center_crop_offsets_use_python_round(h, w, top, left):
    # (35-32)/2 = 1.5 -> 2, (34-32)/2 = 1.0 -> 1, (33-32)/2 = 0.5 -> 0 (banker's rounding)
    spec = resolve_spec(PreprocessSpec(crop=(32, 32), scale=1.0, layout="NHWC"), NHWC_FREE)
    x = preprocess_images([encode(_coordinates(h, w))], spec)[0]
    assert (x[0, 0, 0], x[0, 0, 1]) == (top, left)
    np.testing.assert_array_equal(x[..., 0], np.arange(top, top + 32)[:, None] * np.ones((1, 32)))


def test_crop_larger_than_the_image_is_refused():
    spec = resolve_spec(PreprocessSpec(resize=20, crop=(32, 32)), FREE)
    with pytest.raises(InvalidArgument, match="crop 32x32 is larger"):
        preprocess_images([encode(photo(30, 30))], spec)


def test_bgr_nhwc_and_dtype_are_transforms_of_the_rgb_tensor():
    data = [encode(photo(32, 32, seed=s)) for s in range(2)]
    rgb = preprocess_images(data, resolve_spec(None, NCHW_32))
    assert rgb.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(rgb[1, 0], photo(32, 32, seed=1)[..., 0] / 255, atol=1e-7)
    bgr = preprocess_images(data, resolve_spec(PreprocessSpec(channel_order="BGR"), NCHW_32))
    np.testing.assert_array_equal(bgr, rgb[:, ::-1])
    nhwc_spec = PreprocessSpec(layout="NHWC", resize=(32, 32))
    nhwc = preprocess_images(data, resolve_spec(nhwc_spec, NHWC_FREE))
    np.testing.assert_array_equal(nhwc, rgb.transpose(0, 2, 3, 1))
    half = preprocess_images(data, resolve_spec(PreprocessSpec(dtype="float16"), NCHW_32))
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, rgb.astype(np.float16))
    raw = preprocess_images(data, resolve_spec(None, TensorInfo("x", "uint8", (2, 32, 32, 3))))
    np.testing.assert_array_equal(raw[0], photo(32, 32, seed=0))


def test_gray_models_get_pillow_luminance():
    pixels = photo(16, 16)
    spec = resolve_spec(None, TensorInfo("x", "float32", (1, 1, 16, 16)))
    x = preprocess_images([encode(pixels)], spec)
    luma = np.asarray(Image.fromarray(pixels).convert("L")) / 255
    np.testing.assert_allclose(x[0, 0], luma, atol=1e-7)
    assert to_display(x[0], spec).shape == (16, 16, 3)


def test_batch_errors_name_the_image():
    spec = resolve_spec(PreprocessSpec(resize=16), FREE)
    with pytest.raises(InvalidArgument, match="Image 1 preprocesses to 16x32, image 0 to 16x16"):
        preprocess_images([encode(photo(20, 20)), encode(photo(20, 40))], spec)
    with pytest.raises(InvalidArgument, match="Image 1: The bytes are not an image"):
        preprocess_images([encode(photo(20, 20)), b"garbage"], spec)
    with pytest.raises(InvalidArgument, match="model needs 32x32"):
        preprocess_images([encode(photo(40, 40))], resolve_spec(PreprocessSpec(resize=36), NCHW_32))
    wrong_layout = resolve_spec(PreprocessSpec(layout="NHWC", resize=16), FREE)  # H read as 3
    with pytest.raises(InvalidArgument, match="model needs 3xany"):
        preprocess_images([encode(photo(40, 40))], wrong_layout)
    with pytest.raises(InvalidArgument, match="No images"):
        preprocess_images([], spec)


@pytest.mark.parametrize("spec,info", [
    (IMAGENET, NCHW_32),
    (PreprocessSpec(resize=(32, 32), channel_order="BGR", layout="NHWC", mean=(0.4, 0.5, 0.6),
                    std=(0.2, 0.3, 0.25)), NHWC_FREE),
    (PreprocessSpec(resize=(32, 32), scale=1.0, mean=(103.9, 116.8, 123.7), dtype="float16"), FREE),
    (None, TensorInfo("x", "uint8", (1, 3, 32, 32))),
])
def test_to_display_inverts_preprocessing(spec, info):
    resolved = resolve_spec(spec, info)
    pixels = photo(45, 60, seed=7)
    x = preprocess_images([encode(pixels)], resolved)
    shown = to_display(x[0], resolved)
    if resolved.crop:
        reference = np.asarray(Image.fromarray(pixels).resize((53, 40), Image.Resampling.BILINEAR))
        reference = reference[4:36, 10:42]  # top round(4.0), left round(10.5) = 10
    else:
        reference = np.asarray(Image.fromarray(pixels).resize((32, 32), Image.Resampling.BILINEAR))
    assert shown.dtype == np.uint8 and shown.shape == (32, 32, 3)
    assert np.abs(shown.astype(int) - reference).max() <= 1
