"""Feature maps as pictures (channel grids) and as numbers (per-channel statistics)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from inspector.errors import InvalidArgument
from inspector.imaging.grid import grid_shape, tile, upscale
from inspector.imaging.palette import GAP_INDEX, INK_INDEX, LEVELS, encode_indexed_png, to_levels

LABEL_MIN_TILE = 28  # labelled tiles are enlarged (nearest) to at least this many pixels wide


def normalize_channels(t: np.ndarray, mode: str) -> np.ndarray:
    """[C, H, W] -> float32 in [0, 1] by per-channel or whole-layer min/max over finite values.

    Constant (or all non-finite) channels become 0; NaN -> 0, +inf -> 1, -inf -> 0.
    """
    if mode not in ("channel", "layer"):
        raise InvalidArgument(f"normalize must be 'channel' or 'layer', not {mode!r}.",
                              field="normalize")
    x = t.astype(np.float32, copy=False)
    axes = (1, 2) if mode == "channel" else (0, 1, 2)
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    low = x.min(axis=axes, keepdims=True) if all_finite else np.where(finite, x, np.inf).min(
        axis=axes, keepdims=True)
    high = x.max(axis=axes, keepdims=True) if all_finite else np.where(finite, x, -np.inf).max(
        axis=axes, keepdims=True)
    span = high - low
    varying = np.isfinite(span) & (span > 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = (x - low) / np.where(varying, span, 1)
    v = np.where(varying, v, 0)
    if not all_finite:
        v = np.where(np.isnan(x), 0, np.where(x == np.inf, 1, np.where(x == -np.inf, 0, v)))
    return v.astype(np.float32, copy=False)


def grid_channels(t: np.ndarray, channels: Sequence[int] | None = None, top_k: int | None = None) -> np.ndarray:
    """The channels a feature grid of one image's map [C, ...] shows, in order (see render_feature_grid)."""
    t = np.asarray(t)
    t = t[None] if t.ndim == 2 else t
    return _select(t[:, None] if t.ndim == 1 else t, channels, top_k)


def _select(t: np.ndarray, channels: Sequence[int] | None, top_k: int | None) -> np.ndarray:
    c = t.shape[0]
    if channels is not None and top_k is not None:
        raise InvalidArgument("Give either channels or top_k, not both.", field="channels")
    if top_k is not None:
        if top_k < 1:
            raise InvalidArgument(f"top_k must be at least 1, got {top_k}.", field="top_k")
        flat = t.reshape(c, -1)
        finite = np.isfinite(flat)
        count = finite.sum(axis=1)
        sums = np.where(finite, flat, 0).sum(axis=1, dtype=np.float64)
        means = np.where(count > 0, sums / np.maximum(count, 1), -np.inf)
        return np.argsort(-means, kind="stable")[:top_k]
    if channels is None:
        return np.arange(c)
    index = np.asarray(list(channels), dtype=np.int64)
    bad = index[(index < 0) | (index >= c)]
    if index.size == 0 or bad.size:
        raise InvalidArgument(f"channels must be indices in 0..{c - 1}; got {list(channels)}.",
                              field="channels")
    return index


def render_feature_grid(t: np.ndarray, *, cmap: str = "viridis", normalize: str = "channel",
                        channels: Sequence[int] | None = None, top_k: int | None = None,
                        label: bool = False, title: str = "") -> bytes:
    """One image's feature map [C,H,W] (or [H,W]) -> palette PNG of channel tiles with 1 px gaps.

    [C] and [C,1,1] render as one strip of C cells, normalized over the layer. `label`: each
    tile's channel index on it; with a `title` (the layer) also that above and a colour bar below.
    """
    t = np.asarray(t)
    if t.ndim == 2:
        t = t[None]
    if t.ndim == 3 and t.shape[1:] == (1, 1):
        t = t[:, 0, 0]
    if t.ndim not in (1, 3) or t.size == 0:
        raise InvalidArgument(f"A feature grid needs one image's [C, H, W] map (or [H, W], [C]); "
                              f"got shape {t.shape}. Index the batch first.", field="tensor")
    if t.ndim == 1:
        index = _select(t[:, None], channels, top_k)
        levels = to_levels(normalize_channels(t[None, None], "layer"))[0, 0][index]
        cell = max(1, min(16, 1024 // len(index)))
        return encode_indexed_png(np.repeat(np.repeat(levels[None], 16, 0), cell, 1), cmap)
    index = _select(t, channels, top_k)
    # "layer" means the whole layer's range, also when only some channels are shown
    chosen = t if normalize == "layer" else t[index]
    tiles = to_levels(normalize_channels(chosen, normalize))
    tiles = tiles[index] if normalize == "layer" else tiles
    if label:
        tiles = upscale(tiles, -(-LABEL_MIN_TILE // tiles.shape[2]))
    rows, cols = grid_shape(len(index), *tiles.shape[1:3])
    canvas = tile(tiles, cols, gap=1, fill=GAP_INDEX)
    if not label:
        return encode_indexed_png(canvas, cmap)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=10)
    h, w = tiles.shape[1:3]
    for i, c in enumerate(index):
        r, k = divmod(i, cols)
        draw.text((k * (w + 1) + 2, r * (h + 1) + 1), str(int(c)), fill=GAP_INDEX, font=font,
                  stroke_width=1, stroke_fill=INK_INDEX)
    if title:
        image = _framed(image, title, "per channel" if normalize == "channel" else "per layer")
    return encode_indexed_png(image, cmap)


def _framed(grid: Image.Image, title: str, scale: str) -> Image.Image:
    """The grid with the layer's name above and a colour bar (min .. max, how normalized) below."""
    width = max(grid.width, 220)
    font = ImageFont.load_default(size=11)
    out = Image.new("L", (width, grid.height + 46), GAP_INDEX)
    draw = ImageDraw.Draw(out)
    draw.text((2, 2), _fit_text(draw, title, font, width - 4), fill=INK_INDEX, font=font)
    out.paste(grid, (0, 18))
    top = grid.height + 22
    ramp = np.rint(np.linspace(0, LEVELS - 1, width - 4)).astype(np.uint8)
    out.paste(Image.fromarray(np.repeat(ramp[None], 8, axis=0)), (2, top))
    draw.text((2, top + 10), "min", fill=INK_INDEX, font=font)
    draw.text((width - 2, top + 10), "max", fill=INK_INDEX, font=font, anchor="ra")
    draw.text((width // 2, top + 10), scale, fill=INK_INDEX, font=font, anchor="ma")
    return out


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """`text`, shortened from the left with an ellipsis to fit `width` pixels."""
    while text and draw.textlength(text, font=font) > width:
        text = "…" + text[2:]
    return text


def channel_stats(t: np.ndarray, *, batched: bool | None = None) -> dict[str, np.ndarray]:
    """Per-channel min, max, mean, std, zero_fraction (float64, length C) over batch and space.

    batched=None reads the layout from the rank: 2-D [N,C], 4-D [N,C,H,W] and 5-D carry a batch
    axis; 1-D [C] and 3-D [C,H,W] do not.
    """
    t = np.asarray(t)
    if batched is None:
        batched = t.ndim in (2, 4, 5)
    if t.ndim < (2 if batched else 1) or t.size == 0:
        raise InvalidArgument(f"channel_stats needs [N, C, ...] or [C, ...], got shape {t.shape}.",
                              field="tensor")
    if not batched:
        t = t[None]
    axes = (0, *range(2, t.ndim))
    return {
        "min": t.min(axis=axes).astype(np.float64),
        "max": t.max(axis=axes).astype(np.float64),
        "mean": t.mean(axis=axes, dtype=np.float64),
        "std": t.std(axis=axes, dtype=np.float64),
        "zero_fraction": (t == 0).mean(axis=axes, dtype=np.float64),
    }
