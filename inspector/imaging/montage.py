"""Pictures of several things at once: labelled image grids and value histograms."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from inspector.errors import InvalidArgument
from inspector.imaging.palette import encode_png

GAP = 4  # white pixels between cells
LABEL_HEIGHT = 14  # strip under each image when labels are given


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """Shorten text with an ellipsis until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def tile_images(images: Sequence[np.ndarray], labels: Sequence[str] | None = None,
                cols: int | None = None) -> bytes:
    """uint8 HxWx3 images -> one PNG grid (cells sized to the largest image), labels underneath."""
    if len(images) == 0:
        raise InvalidArgument("tile_images needs at least one image.", field="images")
    if labels is not None and len(labels) != len(images):
        raise InvalidArgument(f"{len(labels)} labels for {len(images)} images.", field="labels")
    arrays = [np.asarray(a) for a in images]
    for a in arrays:
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise InvalidArgument(f"tile_images needs uint8 HxWx3 images, got {a.dtype} {a.shape}.",
                                  field="images")
    cols = cols or math.ceil(math.sqrt(len(arrays)))
    if cols < 1:
        raise InvalidArgument(f"cols must be at least 1, got {cols}.", field="cols")
    rows = math.ceil(len(arrays) / cols)
    cell_h = max(a.shape[0] for a in arrays) + (LABEL_HEIGHT if labels is not None else 0)
    cell_w = max(a.shape[1] for a in arrays)
    canvas = np.full((rows * (cell_h + GAP) - GAP, cols * (cell_w + GAP) - GAP, 3), 255, np.uint8)
    for i, a in enumerate(arrays):
        top, left = (i // cols) * (cell_h + GAP), (i % cols) * (cell_w + GAP)
        canvas[top: top + a.shape[0], left: left + a.shape[1]] = a
    if labels is None:
        return encode_png(canvas)
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=11)
    for i, text in enumerate(labels):
        top, left = (i // cols) * (cell_h + GAP), (i % cols) * (cell_w + GAP)
        draw.text((left + 1, top + cell_h - LABEL_HEIGHT + 1), _fit(draw, str(text), font, cell_w - 2),
                  fill=(0, 0, 0), font=font)
    return encode_png(np.asarray(picture))


def render_histogram(values: np.ndarray, *, title: str = "", bins: int = 100) -> bytes:
    """Histogram PNG of all finite values (NaN/inf are counted in the title, not drawn)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(v)
    if not finite.any():
        raise InvalidArgument("There are no finite values to draw a histogram of.", field="values")
    if bins < 1:
        raise InvalidArgument(f"bins must be at least 1, got {bins}.", field="bins")
    dropped = int(v.size - finite.sum())
    figure = Figure(figsize=(6.4, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.hist(v[finite], bins=bins, color="C0")
    note = f" ({dropped} non-finite values left out)" if dropped else ""
    axes.set_title(f"{title}{note}", fontsize=10)
    axes.set_xlabel("value")
    axes.set_ylabel("count")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
