"""Heatmaps over your own image at its true size and aspect (pytorch-grad-cam's show_cam_on_image).

The server draws overlays on the image as the model saw it (resized, maybe cropped); this draws an
Explanation's heatmap on the original picture instead. numpy and Pillow only (the `images` extra).
"""

from __future__ import annotations

import io
import os

import numpy as np

# matplotlib's "jet" as its segment data (x, value) per channel, sampled to 256 colours like it
_JET = {0: ((0, 0), (0.35, 0), (0.66, 1), (0.89, 1), (1, 0.5)),
        1: ((0, 0), (0.125, 0), (0.375, 1), (0.64, 1), (0.91, 0), (1, 0)),
        2: ((0, 0.5), (0.11, 1), (0.34, 1), (0.65, 0), (1, 0))}


def jet_lut() -> np.ndarray:
    """[256, 3] uint8: the jet colormap."""
    x = np.linspace(0.0, 1.0, 256)
    rgb = [np.interp(x, *zip(*_JET[c], strict=True)) for c in range(3)]
    return np.clip(np.rint(np.stack(rgb, axis=1) * 255), 0, 255).astype(np.uint8)


def show_cam_on_image(image, heatmap: np.ndarray, *, alpha: float = 0.5, png: bool = False):
    """Blend (1 - alpha) * image + alpha * jet(heatmap) at the image's own size.

    `image`: a path, encoded bytes, a PIL image or an HxWx3 uint8 array; `heatmap`: [h, w] in
    [0, 1] (one image of Explanation.heatmap), resized bilinearly to the image. Returns the
    HxWx3 uint8 array, or PNG bytes with `png=True`.
    """
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("show_cam_on_image needs Pillow: pip install 'inspector-client[images]'") from None
    if isinstance(image, str | os.PathLike):
        image = Image.open(image)
    elif isinstance(image, bytes | bytearray):
        image = Image.open(io.BytesIO(image))
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"the image must be RGB uint8 [H, W, 3]; got {rgb.dtype} {list(rgb.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within 0..1, got {alpha}")
    heat = np.nan_to_num(np.asarray(heatmap, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if heat.ndim != 2:
        raise ValueError(f"the heatmap must be one image's [h, w]; got shape {list(heat.shape)}")
    if heat.shape != rgb.shape[:2]:
        heat = np.asarray(Image.fromarray(heat, mode="F").resize((rgb.shape[1], rgb.shape[0]), Image.BILINEAR))
    index = np.minimum((np.clip(heat, 0.0, 1.0) * 256).astype(np.int64), 255)
    blend = (1.0 - alpha) * rgb + alpha * jet_lut()[index].astype(np.float64)
    out = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    if not png:
        return out
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="PNG")
    return buf.getvalue()
