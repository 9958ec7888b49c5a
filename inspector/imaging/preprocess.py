"""Encoded images -> the model's input tensor, the way torchvision-on-PIL pipelines build it.

Order: decode -> resize (Pillow BILINEAR, antialiased) -> center crop -> float32 -> *scale ->
(x - mean) / std per channel (mean/std given in RGB order) -> channel order -> layout -> dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from inspector.domain import PreprocessSpec, TensorInfo
from inspector.errors import InvalidArgument
from inspector.imaging.decode import decode_image

_DTYPES = {"float32", "float16", "float64", "uint8", "int8", "uint16", "int16", "int32", "int64"}


@dataclass(frozen=True)
class ResolvedSpec:
    """A PreprocessSpec with every default filled in from one model input; ready to apply."""

    resize: int | tuple[int, int] | None
    crop: tuple[int, int] | None
    scale: float
    mean: tuple[float, ...]  # one per channel, RGB order
    std: tuple[float, ...]
    channel_order: str  # "RGB" or "BGR"
    layout: str  # "NCHW" or "NHWC"
    dtype: str
    channels: int  # 3, or 1 for gray models
    size: tuple[int | None, int | None]  # the model's (H, W); None where symbolic


def _layout_and_dims(layout: str | None, input_info: TensorInfo) -> tuple[str, tuple]:
    shape = input_info.shape
    if shape is not None and len(shape) != 4:
        raise InvalidArgument(
            f"Input {input_info.name!r} has rank {len(shape)}; image preprocessing needs a 4-D "
            "NCHW or NHWC input.", field="preprocess")
    if shape is None:
        shape = (None, None, None, None)
    if layout is None:
        if shape[1] in (1, 3):
            layout = "NCHW"
        elif shape[3] in (1, 3):
            layout = "NHWC"
        else:
            raise InvalidArgument(
                f"Cannot tell the layout of input {input_info.name!r} with shape {shape}; "
                "set preprocess.layout to NCHW or NHWC.", field="preprocess.layout")
    if layout not in ("NCHW", "NHWC"):
        raise InvalidArgument(f"preprocess.layout must be NCHW or NHWC, not {layout!r}.",
                              field="preprocess.layout")
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
    return layout, (c, h, w)


def _fixed(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _per_channel(name: str, values: tuple[float, ...] | None, default: float, channels: int):
    if values is None:
        return (default,) * channels
    values = tuple(float(v) for v in values)
    if len(values) == 1:
        values *= channels
    if len(values) != channels:
        raise InvalidArgument(f"preprocess.{name} has {len(values)} values; the input has "
                              f"{channels} channels.", field=f"preprocess.{name}")
    if name == "std" and any(v == 0 or not np.isfinite(v) for v in values):
        raise InvalidArgument("preprocess.std values must be finite and non-zero.",
                              field="preprocess.std")
    return values


def _check_size(name: str, size: object) -> None:
    ok = isinstance(size, int) and size > 0
    if isinstance(size, tuple | list):
        ok = len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)
    if not ok:
        raise InvalidArgument(f"preprocess.{name} must be a positive int or (H, W), not {size!r}.",
                              field=f"preprocess.{name}")


def resolve_spec(spec: PreprocessSpec | None, input_info: TensorInfo) -> ResolvedSpec:
    """Fill a spec's defaults from the model input and validate it, before any image is touched."""
    given = spec is not None
    spec = spec or PreprocessSpec()
    layout, (c, h, w) = _layout_and_dims(spec.layout, input_info)
    channels = _fixed(c) or 3
    if channels not in (1, 3):
        raise InvalidArgument(f"Input {input_info.name!r} has {channels} channels; images give "
                              "1 (gray) or 3 (color).", field="preprocess")
    dtype = spec.dtype or input_info.dtype or "float32"
    if dtype not in _DTYPES:
        raise InvalidArgument(f"Cannot feed images as {dtype!r}; the input dtype must be numeric.",
                              field="preprocess.dtype")
    if spec.channel_order not in ("RGB", "BGR"):
        raise InvalidArgument(f"preprocess.channel_order must be RGB or BGR, not "
                              f"{spec.channel_order!r}.", field="preprocess.channel_order")
    size = (_fixed(h), _fixed(w))
    resize, crop = spec.resize, spec.crop
    if crop is not None:
        _check_size("crop", crop)
        crop = (crop, crop) if isinstance(crop, int) else tuple(crop)
    if resize is not None:
        _check_size("resize", resize)
        resize = resize if isinstance(resize, int) else tuple(resize)
    elif crop is None:
        if None in size:
            raise InvalidArgument(
                f"Input {input_info.name!r} has no fixed height/width ({h}x{w}); set "
                "preprocess.resize (and crop) to the size the model expects.",
                field="preprocess.resize")
        resize = size
    if not np.isfinite(spec.scale) or spec.scale == 0:
        raise InvalidArgument("preprocess.scale must be finite and non-zero.",
                              field="preprocess.scale")
    # raw 0..255 pixels for integer inputs unless the caller said otherwise
    scale = 1.0 if not given and np.issubdtype(np.dtype(dtype), np.integer) else spec.scale
    return ResolvedSpec(
        resize=resize, crop=crop, scale=float(scale),
        mean=_per_channel("mean", spec.mean, 0.0, channels),
        std=_per_channel("std", spec.std, 1.0, channels),
        channel_order=spec.channel_order, layout=layout, dtype=dtype, channels=channels,
        size=size)


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


def _to_tensor(pixels: np.ndarray, spec: ResolvedSpec) -> np.ndarray:
    x = pixels.astype(np.float32) * np.float32(spec.scale)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.channel_order == "BGR" and spec.channels == 3:
        x = x[:, :, ::-1]
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        x = np.clip(np.round(x), info.min, info.max)
    return np.ascontiguousarray(x.astype(dtype))


def preprocess_images(images: Sequence[bytes], spec: ResolvedSpec) -> np.ndarray:
    """Decode and preprocess a batch of encoded images into one input tensor [N, ...]."""
    if len(images) == 0:
        raise InvalidArgument("No images were given; send at least one.", field="images")
    tensors: list[np.ndarray] = []
    first_shape: tuple[int, ...] | None = None
    for i, data in enumerate(images):
        try:
            pixels = _pixels(decode_image(data), spec)
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
        tensors.append(_to_tensor(pixels, spec))
    return np.stack(tensors)


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
