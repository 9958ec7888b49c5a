"""Colormap lookup tables and PNG encoding shared by every renderer.

Colormapped grids are palette ("P") PNGs: LEVELS colormap entries, then one entry for gaps
(white) and one for label outlines (black). That is 5x faster and ~2.6x smaller than RGB.
"""

from __future__ import annotations

import io
from functools import lru_cache

import matplotlib
import numpy as np
from PIL import Image

from inspector.errors import InvalidArgument

LEVELS = 254  # value v in [0, 1] -> palette index round(v * (LEVELS - 1))
GAP_INDEX = 254  # white
INK_INDEX = 255  # black (label outlines)


def _colormap(name: str) -> matplotlib.colors.Colormap:
    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise InvalidArgument(
            f"Unknown colormap {name!r}; use a matplotlib name such as viridis, magma, gray, "
            "jet, turbo or RdBu_r.", field="cmap") from None


@lru_cache(maxsize=64)
def palette(name: str) -> np.ndarray:
    """The 256x3 uint8 palette of a colormap: LEVELS evenly spaced colours, gap, ink."""
    colours = _colormap(name)(np.linspace(0.0, 1.0, LEVELS), bytes=True)[:, :3]
    table = np.concatenate([colours, [[255, 255, 255], [0, 0, 0]]]).astype(np.uint8)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=64)
def colormap_lut(name: str) -> np.ndarray:
    """matplotlib's own 256-entry uint8 RGB table; index with int(v * 256) clipped to 255."""
    table = _colormap(name)(np.arange(256, dtype=np.uint8), bytes=True)[:, :3].copy()
    table.flags.writeable = False
    return table


def to_levels(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> palette indices 0..LEVELS-1 (uint8)."""
    return np.rint(np.clip(v, 0.0, 1.0) * (LEVELS - 1)).astype(np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 HxW (gray) or HxWx3 (RGB) -> PNG bytes at compress level 1."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_indexed_png(indices: np.ndarray | Image.Image, cmap: str) -> bytes:
    """uint8 palette indices (HxW, or an "L"/"P" image) -> palette PNG with the cmap's palette."""
    image = indices if isinstance(indices, Image.Image) else Image.fromarray(indices)
    image = image.copy() if image.mode == "P" else image
    image.putpalette(palette(cmap).tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
