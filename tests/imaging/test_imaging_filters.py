"""Filter grids: colours and palette indices of known filters at known pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inspector.errors import InvalidArgument
from inspector.imaging import filters
from inspector.imaging.palette import GAP_INDEX, LEVELS
from inspector.imaging.render import render_filter_grid


def _pixels(png: bytes) -> tuple[str, np.ndarray]:
    image = Image.open(io.BytesIO(png))
    return image.mode, np.asarray(image)


def _levels(v: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(v) * (LEVELS - 1)).astype(int)


def test_rgb_filters_show_their_colour_with_gray_at_zero():
    w = np.zeros((4, 3, 3, 3), np.float32)
    w[0, 0], w[0, 1:] = 2.0, -2.0  # pure red: likes red, dislikes green and blue
    w[1, 0] = 0.5  # red only, nothing else: red over gray
    w[3, 2], w[3, :2] = 1.0, -1.0  # pure blue
    w[3, 2, 1, 1] = 0.0  # its centre sees no blue
    mode, grid = _pixels(render_filter_grid(w))
    assert mode == "RGB"
    # 3x3 kernels enlarged 8x to 24 px; 4 filters -> 2x2 grid with 1 px white gaps
    assert grid.shape == (49, 49, 3)
    tiles = [grid[r * 25: r * 25 + 24, c * 25: c * 25 + 24] for r in (0, 1) for c in (0, 1)]
    assert (tiles[0] == [255, 0, 0]).all()
    assert (tiles[1] == [255, 128, 128]).all()
    assert (tiles[2] == [128, 128, 128]).all()  # an all-zero filter is plain gray
    assert (tiles[3][:8] == [0, 0, 255]).all()
    assert (tiles[3][8:16, 8:16] == [0, 0, 128]).all()  # the centre block, nearest-enlarged
    assert (grid[24] == 255).all() and (grid[:, 24] == 255).all()


def test_mean_mode_averages_inputs_and_scales_each_filter():
    w = np.zeros((2, 2, 2, 2))
    w[0, 0] = [[4, 0], [-4, 2]]
    w[0, 1] = [[0, 0], [0, 2]]  # mean over inputs: [[2, 0], [-2, 2]]
    w[1] = 0.001 * np.array([[1, -1], [0.5, 0]])  # tiny weights still fill the scale
    mode, grid = _pixels(render_filter_grid(w, mode="auto"))
    assert mode == "P"
    factor = 12  # ceil(24 / 2)
    assert grid.shape == (24, 2 * 24 + 1)
    expected0 = _levels(0.5 + 0.5 * np.array([[2, 0], [-2, 2]]) / 2)
    expected1 = _levels(0.5 + 0.5 * np.array([[1, -1], [0.5, 0]]))
    np.testing.assert_array_equal(grid[::factor, 0:24:factor], expected0)
    np.testing.assert_array_equal(grid[::factor, 25::factor], expected1)
    assert (grid[:, 24] == GAP_INDEX).all()


def test_channels_mode_is_filters_by_inputs():
    w = np.random.default_rng(0).standard_normal((3, 2, 4, 4))
    mode, grid = _pixels(render_filter_grid(w, mode="channels", cmap="gray"))
    assert mode == "P" and grid.shape == (3 * 24 + 2, 2 * 24 + 1)  # 3 rows x 2 cols, 6x enlarged
    for o in range(3):
        scaled = 0.5 + 0.5 * w[o] / np.abs(w[o]).max()
        for i in range(2):
            tile = grid[o * 25: o * 25 + 24, i * 25: i * 25 + 24]
            np.testing.assert_array_equal(tile[::6, ::6], _levels(scaled[i]))


def test_gemm_weights_are_one_heatmap():
    w = np.array([[1.0, -1.0, 0.25], [0.0, 0.5, -0.5]])
    mode, image = _pixels(render_filter_grid(w))
    assert mode == "P" and image.shape == (2 * 12, 3 * 12)  # enlarged to >= 24 px
    np.testing.assert_array_equal(image[::12, ::12], _levels(0.5 + 0.5 * w))


def test_huge_gemm_weights_are_area_averaged(monkeypatch):
    monkeypatch.setattr(filters, "MAX_PIXELS", 10_000)
    w = np.ones((200, 100))
    w[100:] = -1.0
    mode, image = _pixels(render_filter_grid(w))
    assert image.size <= 10_000 * 1.01 and image.shape[0] > image.shape[1]
    assert (image[: image.shape[0] // 2 - 2] == LEVELS - 1).all()
    assert (image[image.shape[0] // 2 + 2:] == 0).all()


def test_conv1d_and_depthwise_weights():
    _, grid = _pixels(render_filter_grid(np.array([[[1.0, -1.0, 0.0]]]), mode="mean"))
    assert grid.shape == (8, 24)  # a 1x3 kernel, enlarged 8x along both axes
    assert grid[0, ::8].tolist() == _levels([1.0, 0.0, 0.5]).tolist()
    _, grid = _pixels(render_filter_grid(np.array([[[[2.0, -1.0]]], [[[0.0, 0.0]]]])))
    # depthwise [C, 1, 1, 2]: one 12x24 tile per channel, stacked so the grid is near square
    assert grid.shape == (2 * 12 + 1, 24)
    assert grid[0, ::12].tolist() == _levels([1.0, 0.25]).tolist()
    assert (grid[13:] == _levels(0.5)).all()


@pytest.mark.parametrize("w,kwargs,match", [
    (np.ones((4, 2, 3, 3)), {"mode": "rgb"}, "3 input channels"),
    (np.ones((4, 3, 3, 3)), {"mode": "pretty"}, "mode must be"),
    (np.ones((2, 2, 2, 2, 2)), {}, "conv weight"),
    (np.full((2, 3, 3, 3), np.nan), {}, "NaN"),
    (np.ones((30, 30, 3, 3)), {"mode": "channels"}, "too large"),  # 120x120 px > 10,000
])
def test_bad_filter_requests_are_refused(w, kwargs, match, monkeypatch):
    monkeypatch.setattr(filters, "MAX_PIXELS", 10_000)
    with pytest.raises(InvalidArgument, match=match):
        render_filter_grid(w, **kwargs)
