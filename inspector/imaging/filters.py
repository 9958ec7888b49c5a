"""Convolution and Gemm weights as pictures, zero always at the middle of the scale."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from inspector.errors import InvalidArgument
from inspector.imaging.grid import grid_shape, tile, upscale
from inspector.imaging.palette import GAP_INDEX, encode_indexed_png, encode_png, to_levels

MIN_TILE = 24  # small kernels are enlarged (nearest) to about this many pixels
MAX_PIXELS = 16_000_000  # a filter grid never grows beyond this; large ones are not enlarged
_MODES = ("auto", "rgb", "mean", "channels")


def symmetric(w: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Map w to [0, 1] with 0 -> 0.5, dividing by max |w| over `axes` (all-zero stays 0.5)."""
    peak = np.abs(w).max(axis=axes, keepdims=True)
    return 0.5 + 0.5 * w / np.where(peak > 0, peak, 1.0)


def _factor(kernel: int, grid_h: int, grid_w: int) -> int:
    """Enlargement for kernels of size `kernel` in a grid of grid_h x grid_w kernels."""
    factor = max(1, math.ceil(MIN_TILE / kernel))
    while factor > 1 and (grid_h * (kernel * factor + 1)) * (grid_w * (kernel * factor + 1)) > MAX_PIXELS:
        factor -= 1
    if grid_h * (kernel + 1) * grid_w * (kernel + 1) > MAX_PIXELS:
        raise InvalidArgument(
            f"A grid of {grid_h}x{grid_w} kernels is too large to draw; use mode='mean' "
            "or look at the raw weights.", field="mode")
    return factor


def render_filter_grid(w: np.ndarray, *, mode: str = "auto", cmap: str = "RdBu_r") -> bytes:
    """Conv weight [O,I,kh,kw] (or [O,I,k]) -> PNG grid of filters; Gemm weight [O,I] -> heatmap.

    "rgb" (auto when I == 3): each filter as a colour image, gray = 0; "mean": the filter averaged
    over its inputs, one colormapped tile each; "channels": O rows x I columns of kernels.
    Every filter is scaled by its own max |w|.
    """
    w = np.asarray(w, dtype=np.float64)
    if mode not in _MODES:
        raise InvalidArgument(f"mode must be one of {', '.join(_MODES)}, not {mode!r}.",
                              field="mode")
    if w.size == 0 or not np.isfinite(w).all():
        raise InvalidArgument(f"The weight (shape {w.shape}) is empty or holds NaN/inf values.",
                              field="weight")
    if w.ndim == 2:
        return _gemm_heatmap(w, cmap)
    if w.ndim == 3:
        w = w[:, :, None, :]
    if w.ndim != 4:
        raise InvalidArgument(f"Filter grids need a conv weight [O, I, kh, kw] or a Gemm weight "
                              f"[O, I]; got shape {w.shape}.", field="weight")
    o, i, kh, kw = w.shape
    if mode == "rgb" and i != 3:
        raise InvalidArgument(f"mode='rgb' needs filters with 3 input channels; these have {i}. "
                              "Use mode='mean' or 'channels'.", field="mode")
    if mode in ("auto", "rgb") and i == 3:
        rgb = np.rint(symmetric(w, (1, 2, 3)) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
        _, cols = grid_shape(o, kh, kw)
        factor = _factor(max(kh, kw), math.ceil(o / cols), cols)
        return encode_png(tile(upscale(rgb, factor), cols, fill=255))
    if mode == "channels":
        tiles = to_levels(symmetric(w, (1, 2, 3))).reshape(o * i, kh, kw)
        rows, cols = o, i
    else:
        tiles = to_levels(symmetric(w.mean(axis=1), (1, 2)))
        rows, cols = grid_shape(o, kh, kw)
    factor = _factor(max(kh, kw), rows, cols)
    return encode_indexed_png(tile(upscale(tiles, factor), cols, fill=GAP_INDEX), cmap)


def _gemm_heatmap(w: np.ndarray, cmap: str) -> bytes:
    """[O, I] -> one heatmap (rows = O), shrunk by area averaging or enlarged to a sane size."""
    o, i = w.shape
    if o * i > MAX_PIXELS:
        shrink = math.sqrt(o * i / MAX_PIXELS)
        size = (max(1, int(i / shrink)), max(1, int(o / shrink)))
        w = np.asarray(Image.fromarray(w.astype(np.float32)).resize(size, Image.Resampling.BOX),
                       dtype=np.float64)
    factor = max(1, min(math.ceil(MIN_TILE / min(w.shape)), 2048 // max(w.shape)))
    levels = to_levels(symmetric(w, (0, 1)))
    return encode_indexed_png(upscale(levels[None], factor)[0], cmap)
