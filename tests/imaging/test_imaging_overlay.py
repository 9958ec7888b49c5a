"""resize_map against a per-pixel bilinear reference; overlay pixels equal the blend formula."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from inspector.errors import InvalidArgument
from inspector.imaging.render import render_image, render_overlay, resize_map


def _bilinear_reference(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """align_corners=False, one output pixel at a time (as written in cv2/torch docs)."""
    out = np.empty((h, w))
    for y in range(h):
        sy = max((y + 0.5) * m.shape[0] / h - 0.5, 0.0)
        y0 = min(int(sy), m.shape[0] - 1)
        y1, fy = min(y0 + 1, m.shape[0] - 1), sy - y0
        for x in range(w):
            sx = max((x + 0.5) * m.shape[1] / w - 0.5, 0.0)
            x0 = min(int(sx), m.shape[1] - 1)
            x1, fx = min(x0 + 1, m.shape[1] - 1), sx - x0
            top = m[y0, x0] * (1 - fx) + m[y0, x1] * fx
            bottom = m[y1, x0] * (1 - fx) + m[y1, x1] * fx
            out[y, x] = top * (1 - fy) + bottom * fy
    return out


def test_resize_map_known_answer():
    # torch.nn.functional.interpolate(..., size=4, mode="bilinear", align_corners=False)
    expected = [[1.0, 1.25, 1.75, 2.0], [1.5, 1.75, 2.25, 2.5],
                [2.5, 2.75, 3.25, 3.5], [3.0, 3.25, 3.75, 4.0]]
    got = resize_map(np.array([[1, 2], [3, 4]]), (4, 4))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("src,dst", [((7, 7), (224, 224)), ((5, 9), (13, 11)), ((12, 10), (5, 4)),
                                     ((1, 6), (3, 12)), ((6, 6), (6, 6))])
def test_resize_map_equals_the_reference(src, dst):
    m = np.random.default_rng(0).standard_normal(src)
    np.testing.assert_allclose(resize_map(m, dst), _bilinear_reference(m, *dst), rtol=1e-5, atol=1e-6)


def _decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "RGB"
    return np.asarray(image).astype(float)


def test_overlay_pixels_follow_the_blend_formula():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    heat = rng.random((6, 8))
    heat[0, 0], heat[0, 1] = 0.0, 1.0
    got = _decode(render_overlay(image, heat, cmap="jet", alpha=0.3))
    colour = matplotlib.colormaps["jet"](heat, bytes=True)[..., :3].astype(float)
    expected = 0.7 * image + 0.3 * colour
    assert np.abs(got - expected).max() <= 0.5 + 1e-9
    assert got[0, 1].tolist() == np.rint(0.7 * image[0, 1] + 0.3 * np.array([127, 0, 0])).tolist()


def test_overlay_resizes_the_heatmap_and_ignores_nan():
    image = np.full((8, 8, 3), 100, np.uint8)
    heat = np.array([[0.0, 1.0], [np.nan, 0.5]])
    got = _decode(render_overlay(image, heat, cmap="viridis", alpha=1.0))
    upsampled = resize_map(np.nan_to_num(heat), (8, 8))
    colour = matplotlib.colormaps["viridis"](upsampled, bytes=True)[..., :3]
    np.testing.assert_array_equal(got, colour)
    assert got[7, 0].tolist() == list(matplotlib.colormaps["viridis"](0.0, bytes=True)[:3])
    only_image = _decode(render_overlay(image, np.full((3, 3), np.nan), alpha=0.0))
    assert (only_image == 100).all()


@pytest.mark.parametrize("image,heat,alpha,match", [
    (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4)), 0.5, "uint8"),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4)), 0.5, "HxWx3"),
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 1)), 0.5, "2-D"),
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4)), 1.5, "alpha"),
])
def test_bad_overlays_are_refused(image, heat, alpha, match):
    with pytest.raises(InvalidArgument, match=match):
        render_overlay(image, heat, alpha=alpha)


def test_render_image_round_trips():
    image = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_decode(render_image(image)), image)
