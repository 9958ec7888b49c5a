"""tile_images places every image at its cell; histograms draw bars of the right heights."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inspector.errors import InvalidArgument
from inspector.imaging.montage import GAP, LABEL_HEIGHT
from inspector.imaging.render import render_histogram, tile_images


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _solid(h: int, w: int, colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (h, w, 3)).copy()


def test_images_sit_in_their_cells():
    images = [_solid(10, 12, (200, 0, 0)), _solid(10, 12, (0, 200, 0)), _solid(6, 5, (0, 0, 200))]
    grid = _decode(tile_images(images, cols=2))
    assert grid.shape == (2 * 10 + GAP, 2 * 12 + GAP, 3)
    assert (grid[:10, :12] == (200, 0, 0)).all()
    assert (grid[:10, 12 + GAP:] == (0, 200, 0)).all()
    assert (grid[10 + GAP: 16 + GAP, :5] == (0, 0, 200)).all()
    assert (grid[16 + GAP:, :] == 255).all() and (grid[10 + GAP:, 12:] == 255).all()


def test_labels_are_written_under_each_image():
    images = [_solid(20, 40, (0, 0, 0)), _solid(20, 40, (0, 0, 0))]
    grid = _decode(tile_images(images, labels=["cat", "a label far too long to fit"]))
    assert grid.shape == (20 + LABEL_HEIGHT, 2 * 40 + GAP, 3)
    assert (grid[:20, :40] == 0).all()
    for left in (0, 40 + GAP):
        strip = grid[20:, left: left + 40]
        assert (strip < 128).any() and (strip == 255).any()
    unlabeled = _decode(tile_images(images, labels=["", ""]))
    assert (unlabeled[20:] == 255).all()


def test_bad_tiles_are_refused():
    with pytest.raises(InvalidArgument, match="at least one"):
        tile_images([])
    with pytest.raises(InvalidArgument, match="2 labels for 1 images"):
        tile_images([_solid(2, 2, (0, 0, 0))], labels=["a", "b"])
    with pytest.raises(InvalidArgument, match="uint8 HxWx3"):
        tile_images([np.zeros((2, 2), np.uint8)])


def _bar_heights(png: bytes) -> np.ndarray:
    """Pixel height of matplotlib's default bar colour (C0) in every column."""
    image = _decode(png).astype(int)
    c0 = np.array([31, 119, 180])
    return (np.abs(image - c0).sum(axis=2) <= 6).sum(axis=0)


def test_histogram_bar_heights_follow_the_counts():
    values = np.r_[np.zeros(2000), np.ones(1000), [np.nan, np.inf]]
    heights = _bar_heights(render_histogram(values, title="two bars", bins=2))
    columns = np.flatnonzero(heights)
    left = np.median(heights[columns[: len(columns) // 2]])
    right = np.median(heights[columns[len(columns) // 2:]])
    assert left > 200
    assert left == pytest.approx(2 * right, rel=0.03)
    with pytest.raises(InvalidArgument, match="no finite"):
        render_histogram(np.array([np.nan]))
