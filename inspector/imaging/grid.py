"""Tile equally sized images into a near-square grid with gaps (pure numpy)."""

from __future__ import annotations

import math

import numpy as np


def grid_shape(n: int, tile_h: int = 1, tile_w: int = 1) -> tuple[int, int]:
    """(rows, cols) for n tiles so that the whole grid is close to square in pixels."""
    cols = max(1, min(n, math.ceil(math.sqrt(n * tile_h / tile_w))))
    return math.ceil(n / cols), cols


def tile(tiles: np.ndarray, cols: int, *, gap: int = 1, fill: int | tuple = 0) -> np.ndarray:
    """tiles [n, h, w] or [n, h, w, c] -> one [rows*h + gaps, cols*w + gaps(, c)] canvas.

    Tile i sits at row i // cols, column i % cols; unused cells and gaps hold `fill`.
    """
    n, h, w = tiles.shape[:3]
    rows = math.ceil(n / cols)
    extra = tiles.shape[3:]
    padded = np.empty((rows * cols, h + gap, w + gap, *extra), dtype=tiles.dtype)
    padded[...] = fill
    padded[:n, :h, :w] = tiles
    canvas = padded.reshape(rows, cols, h + gap, w + gap, *extra).swapaxes(1, 2)
    canvas = canvas.reshape(rows * (h + gap), cols * (w + gap), *extra)
    return np.ascontiguousarray(canvas[: rows * (h + gap) - gap, : cols * (w + gap) - gap])


def upscale(tiles: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlarge axes 1 and 2 of [n, h, w(, c)] by an integer factor."""
    if factor == 1:
        return tiles
    return tiles.repeat(factor, axis=1).repeat(factor, axis=2)
