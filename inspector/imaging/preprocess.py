"""Encoded images -> the model's input tensor, the way torchvision-on-PIL pipelines build it.

Order: decode -> resize (Pillow BILINEAR, antialiased) -> center crop -> float32 -> *scale ->
(x - mean) / std per channel (mean/std given in RGB order) -> channel order -> layout -> dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from inspector.errors import InvalidArgument
from inspector.imaging.decode import decode_image
from inspector.imaging.spec import ResolvedSpec, resolve_spec

__all__ = ["ResolvedSpec", "center_crop", "preprocess_images", "resized_size", "resolve_spec",
           "to_display"]


def resized_size(width: int, height: int, resize: int | tuple[int, int]) -> tuple[int, int]:
    """(W, H) after torchvision's Resize: an int sets the shorter side, keeping aspect."""
    if not isinstance(resize, int):
        return resize[1], resize[0]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = resize, int(resize * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def center_crop(image: Image.Image, crop: tuple[int, int]) -> Image.Image:
    """torchvision CenterCrop on a PIL image (offsets rounded with Python's round)."""
    ch, cw = crop
    w, h = image.size
    if ch > h or cw > w:
        raise InvalidArgument(f"preprocess.crop {ch}x{cw} is larger than the resized image "
                              f"{h}x{w}; crop smaller or resize larger.", field="preprocess.crop")
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return image.crop((left, top, left + cw, top + ch))


def _pixels(image: Image.Image, spec: ResolvedSpec) -> np.ndarray:
    """Decoded RGB image -> resized, cropped uint8 HxWxC array."""
    if spec.resize is not None:
        target = resized_size(*image.size, spec.resize)
        if target != image.size:
            image = image.resize(target, Image.Resampling.BILINEAR)
    if spec.crop is not None:
        image = center_crop(image, spec.crop)
    if spec.channels == 1:
        return np.asarray(image.convert("L"))[:, :, None]
    return np.asarray(image)


def to_tensor(pixels: np.ndarray, spec: ResolvedSpec, dtype: str | np.dtype | None = None) -> np.ndarray:
    """Pixels [..., H, W, C] in 0..255 (uint8 or float, C = spec.channels) -> the model's layout
    and dtype: scale, mean/std, channel order; integer dtypes are rounded and clipped.

    `dtype` overrides spec.dtype (float32: the same values before the final rounding/cast)."""
    x = np.asarray(pixels, np.float32) * np.float32(spec.scale)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.channel_order == "BGR" and spec.channels == 3:
        x = x[..., ::-1]
    if spec.layout == "NCHW":
        x = np.moveaxis(x, -1, -3)
    dtype = np.dtype(spec.dtype if dtype is None else dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        x = np.clip(np.round(x), info.min, info.max)
    return np.ascontiguousarray(x.astype(dtype))


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] -> [..., 1] with the ITU-R 601 weights PIL's "L" mode uses."""
    return (np.asarray(rgb, np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32))[..., None]


def preprocess_images(images: Sequence[bytes], spec: ResolvedSpec, *, max_pixels: int = 50_000_000,
                      max_bytes: int = 64 << 20, originals: list | None = None) -> np.ndarray:
    """Decode and preprocess a batch of encoded images into one input tensor [N, ...]; with a list
    as `originals`, each decoded picture (RGB, its own size) is appended to it."""
    if len(images) == 0:
        raise InvalidArgument("No images were given; send at least one.", field="images")
    tensors: list[np.ndarray] = []
    first_shape: tuple[int, ...] | None = None
    for i, data in enumerate(images):
        try:
            decoded = decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes)
            pixels = _pixels(decoded, spec)
            if originals is not None:
                originals.append(np.asarray(decoded.convert("RGB")))
        except InvalidArgument as exc:
            raise InvalidArgument(f"Image {i}: {exc.message}", field=exc.field or "images") from exc
        h, w = pixels.shape[:2]
        want_h, want_w = spec.size
        if (want_h is not None and h != want_h) or (want_w is not None and w != want_w):
            raise InvalidArgument(
                f"Image {i} preprocesses to {h}x{w} but the model needs "
                f"{want_h or 'any'}x{want_w or 'any'} ({spec.layout}); set "
                "preprocess.resize or crop to that size.", field="preprocess")
        first_shape = first_shape or pixels.shape
        if pixels.shape != first_shape:
            raise InvalidArgument(
                f"Image {i} preprocesses to {h}x{w}, image 0 to {first_shape[0]}x{first_shape[1]}; "
                "a batch needs one size: set preprocess.crop or an exact (H, W) resize.",
                field="preprocess")
        tensors.append(to_tensor(pixels, spec))
    return np.stack(tensors)


def heat_on_original(heat: np.ndarray, spec: ResolvedSpec, size: tuple[int, int]) -> np.ndarray:
    """A heatmap over the model's input [h, w] placed on the original picture of `size` (H, W):
    undo the center crop (no heat outside it), then the resize."""
    from inspector.imaging.overlay import resize_map

    heat = np.asarray(heat, np.float64)
    if spec.crop is not None:
        rw, rh = resized_size(size[1], size[0], spec.resize) if spec.resize is not None else (size[1], size[0])
        canvas = np.zeros((rh, rw), np.float64)
        top, left = int(round((rh - spec.crop[0]) / 2.0)), int(round((rw - spec.crop[1]) / 2.0))
        canvas[top:top + heat.shape[0], left:left + heat.shape[1]] = heat
        heat = canvas
    return resize_map(heat, size) if heat.shape != tuple(size) else heat


def to_display(x: np.ndarray, spec: ResolvedSpec) -> np.ndarray:
    """One preprocessed input (C,H,W or H,W,C per the spec, no batch) -> uint8 HxWx3 RGB."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise InvalidArgument(f"to_display needs one image tensor of rank 3, got shape {x.shape}.")
    if spec.layout == "NCHW":
        x = x.transpose(1, 2, 0)
    if x.shape[2] != spec.channels:
        raise InvalidArgument(f"The tensor has {x.shape[2]} channels; the spec expects "
                              f"{spec.channels} ({spec.layout}).")
    if spec.channel_order == "BGR" and spec.channels == 3:
        x = x[:, :, ::-1]
    x = (x * np.asarray(spec.std) + np.asarray(spec.mean)) / spec.scale
    rgb = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(rgb, 3, axis=2) if spec.channels == 1 else rgb)
