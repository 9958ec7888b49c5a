"""Heatmaps over images: bilinear map resizing and alpha blending with a colormap."""

from __future__ import annotations

import numpy as np

from inspector.errors import InvalidArgument
from inspector.imaging.palette import colormap_lut, encode_png


def _source_index(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbours and weights of each output pixel along one axis (half-pixel centres, clamped)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, src - low


def resize_map(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """2-D map -> float32 (H, W) by bilinear interpolation with align_corners=False.

    Matches cv2.resize(INTER_LINEAR) and torch interpolate(mode="bilinear") without antialias.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise InvalidArgument(f"resize_map needs a non-empty 2-D map, got shape {m.shape}.")
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise InvalidArgument(f"resize_map target size must be positive, got {size}.")
    y0, y1, fy = _source_index(m.shape[0], h)
    x0, x1, fx = _source_index(m.shape[1], w)
    rows = m[y0] * (1 - fy)[:, None] + m[y1] * fy[:, None]
    return (rows[:, x0] * (1 - fx) + rows[:, x1] * fx).astype(np.float32)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InvalidArgument(f"Expected a uint8 HxWx3 RGB image, got {image.dtype} {image.shape}.",
                              field="image")
    return image


def render_overlay(image: np.ndarray, heat: np.ndarray, *, cmap: str = "jet",
                   alpha: float = 0.5) -> bytes:
    """Blend (1 - alpha) * image + alpha * cmap(heat) into an RGB PNG.

    heat [h, w] in [0, 1] is resized to the image when needed, clipped to [0, 1], NaN -> 0.
    """
    image = _check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgument(f"alpha must be within 0..1, got {alpha}.", field="alpha")
    heat = np.asarray(heat, dtype=np.float64)
    if heat.ndim != 2 or heat.size == 0:
        raise InvalidArgument(f"The heatmap must be 2-D, got shape {heat.shape}.", field="heat")
    heat = np.nan_to_num(heat, nan=0.0, posinf=1.0, neginf=0.0)
    if heat.shape != image.shape[:2]:
        heat = resize_map(heat, image.shape[:2])
    index = np.minimum((np.clip(heat, 0.0, 1.0) * 256).astype(np.int64), 255)
    colour = np.take(colormap_lut(cmap), index, axis=0)
    blend = (1.0 - alpha) * image + alpha * colour.astype(np.float64)
    return encode_png(np.clip(np.rint(blend), 0, 255).astype(np.uint8))


def render_image(image: np.ndarray) -> bytes:
    """uint8 HxWx3 RGB -> PNG."""
    return encode_png(_check_image(image))
