"""Resolve a PreprocessSpec against one model input: defaults filled in, mistakes named early."""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from inspector.domain import PreprocessSpec, TensorInfo
from inspector.errors import InvalidArgument

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


def _size(name: str, size: object) -> int | tuple[int, int]:
    """A positive int, or (H, W); a one-element sequence counts as the int."""
    try:
        if isinstance(size, tuple | list) and len(size) in (1, 2):
            values = tuple(operator.index(s) for s in size)
            if all(v > 0 for v in values):
                return values[0] if len(values) == 1 else values
        elif operator.index(size) > 0:
            return operator.index(size)
    except TypeError:
        pass
    raise InvalidArgument(f"preprocess.{name} must be a positive int or (H, W), not {size!r}.",
                          field=f"preprocess.{name}")


def resolve_spec(spec: PreprocessSpec | None, input_info: TensorInfo) -> ResolvedSpec:
    """Fill a spec's defaults from the model input and validate it, before any image is touched."""
    spec = spec or PreprocessSpec()
    layout, (c, h, w) = _layout_and_dims((spec.layout or "").upper() or None, input_info)
    channels = _fixed(c) or 3
    if channels not in (1, 3):
        raise InvalidArgument(f"Input {input_info.name!r} has {channels} channels; images give "
                              "1 (gray) or 3 (color).", field="preprocess")
    dtype = spec.dtype or input_info.dtype or "float32"
    if dtype not in _DTYPES:
        raise InvalidArgument(f"Cannot feed images as {dtype!r}; the input dtype must be numeric.",
                              field="preprocess.dtype")
    order = (spec.channel_order or "RGB").upper()
    if order not in ("RGB", "BGR"):
        raise InvalidArgument(f"preprocess.channel_order must be RGB or BGR, not "
                              f"{spec.channel_order!r}.", field="preprocess.channel_order")
    size = (_fixed(h), _fixed(w))
    resize, crop = spec.resize, spec.crop
    if crop is not None:
        crop = _size("crop", crop)
        crop = (crop, crop) if isinstance(crop, int) else crop
    if resize is not None:
        resize = _size("resize", resize)
    elif crop is None:
        if None in size:
            raise InvalidArgument(
                f"Input {input_info.name!r} has no fixed height/width ({h}x{w}); set "
                "preprocess.resize (and crop) to the size the model expects.",
                field="preprocess.resize")
        resize = size
    scale = PreprocessSpec.scale if spec.scale is None else float(spec.scale)
    if not np.isfinite(scale) or scale == 0:
        raise InvalidArgument("preprocess.scale must be finite and non-zero.",
                              field="preprocess.scale")
    # integer inputs take raw 0..255 pixels: the default 1/255 would round every pixel to 0 or 1
    integer = np.issubdtype(np.dtype(dtype), np.integer)
    scale = 1.0 if integer and scale == PreprocessSpec.scale else scale
    return ResolvedSpec(
        resize=resize, crop=crop, scale=float(scale),
        mean=_per_channel("mean", spec.mean or None, 0.0, channels),
        std=_per_channel("std", spec.std or None, 1.0, channels),
        channel_order=order, layout=layout, dtype=dtype, channels=channels,
        size=size)
