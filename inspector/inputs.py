"""Turn a request's input (a raw tensor or encoded images) into the model's input batch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inspector import errors
from inspector.domain import PreprocessSpec, TensorInfo


@dataclass(frozen=True)
class InputData:
    """A request's input: exactly one of `tensor` or `images` (encoded bytes, one per image)."""

    tensor: np.ndarray | None = None
    images: Sequence[bytes] | None = None
    preprocess: dict | None = None  # per-request override: only the fields the caller set
    named: dict[str, InputData] | None = None  # several inputs by name (then no tensor/images)


@dataclass(frozen=True)
class PreparedInput:
    x: np.ndarray  # the model's input batch
    spec: object | None  # imaging.preprocess.ResolvedSpec (for tensors too, when one resolves)
    others: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # other inputs, held fixed
    originals: list[np.ndarray] | None = None  # encoded images as decoded: RGB at their own size

    def display(self, i: int) -> np.ndarray:
        """Image i in display space (uint8 HxWx3) for overlays; min-max scaled without a spec.

        An input that is not an image batch (rank != 4: tokens, sequences, vectors) has nothing to
        draw an overlay on: InvalidArgument asking for overlay=False. Channels-first or -last is
        read as the methods read it (last axis 1 or 3 and axis 1 not); 1 channel is gray, 3 RGB,
        4 RGB (alpha dropped), any other count the min-max scaled channel mean.
        """
        from inspector.imaging.preprocess import to_display

        x = np.asarray(self.x)
        if x.ndim != 4:
            raise errors.InvalidArgument(f"overlays need an image input [N, C, H, W] or [N, H, W, C]; this input has "
                                         f"shape {list(x.shape)}: pass overlay=False", field="overlay")
        if not 0 <= i < len(x):
            raise errors.InvalidArgument(f"overlay {i} asked for a batch of {len(x)} image(s): the heatmaps do not "
                                         "match the input batch; pass overlay=False", field="overlay")
        if self.spec is not None:
            try:
                return to_display(x[i], self.spec)
            except errors.InvalidArgument:
                pass  # the spec does not describe this tensor: min-max display below
        img = np.asarray(x[i], np.float64)
        last = img.shape[2] in (1, 3) and img.shape[0] not in (1, 3)
        img = img if last else img.transpose(1, 2, 0)
        if img.shape[2] == 4:
            img = img[..., :3]
        elif img.shape[2] not in (1, 3):
            img = img.mean(axis=2, keepdims=True)
        img = np.nan_to_num(img)
        lo, hi = img.min(), img.max()
        scaled = np.round((img - lo) / (hi - lo if hi > lo else 1.0) * 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(scaled, 3, axis=2) if scaled.shape[2] == 1 else scaled)


def spec_to_dict(spec: PreprocessSpec | None) -> dict:
    return {} if spec is None else {k: v for k, v in dataclasses.asdict(spec).items()
                                    if v != getattr(PreprocessSpec(), k)}


def spec_from_dict(data: dict | None) -> PreprocessSpec:
    data = dict(data or {})
    unknown = set(data) - {f.name for f in dataclasses.fields(PreprocessSpec)}
    if unknown:
        raise errors.InvalidArgument(f"unknown preprocess fields: {sorted(unknown)}", field="preprocess")
    for key in ("crop", "mean", "std"):
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    if isinstance(data.get("resize"), list | tuple):
        data["resize"] = data["resize"][0] if len(data["resize"]) == 1 else tuple(data["resize"])
    return PreprocessSpec(**data)


def prepare_inputs(inp: InputData, inputs: Sequence[TensorInfo], stored_spec: dict | None,
                   **limits: int) -> PreparedInput:
    """The image input (inputs[0]) prepared, and with inputs by name every other one too (a
    tensor as is, images by their own input's default spec)."""
    if not inp.named:
        return prepare_input(inp, inputs[0], stored_spec, **limits)
    known = {i.name: i for i in inputs}
    unknown = sorted(set(inp.named) - set(known))
    if unknown:
        raise errors.InvalidArgument(f"the model has no input(s) {unknown}; its inputs are {list(known)}",
                                     field="input")
    image = inputs[0].name
    if image not in inp.named:
        raise errors.InvalidArgument(f"inputs by name need the image input '{image}' (methods attribute to "
                                     f"it); got {sorted(inp.named)}", field="input")
    first = inp.named[image]
    if inp.preprocess:
        first = InputData(first.tensor, first.images, {**inp.preprocess, **(first.preprocess or {})})
    prepared = prepare_input(first, inputs[0], stored_spec, **limits)
    for name, other in inp.named.items():
        if name != image:
            prepared.others[name] = prepare_input(other, known[name], None, **limits).x
    return prepared


def prepare_input(inp: InputData, input_info: TensorInfo, stored_spec: dict | None,
                  *, max_batch: int, max_pixels: int, max_bytes: int) -> PreparedInput:
    """Decode + preprocess images, or check a raw tensor; the batch size is bounded."""
    if inp.named:
        raise errors.InvalidArgument("inputs by name nest no further: give each input a tensor or images",
                                     field="input")
    from inspector.imaging.preprocess import preprocess_images, resolve_spec

    spec_dict = {**(stored_spec or {}), **(inp.preprocess or {})}
    has_tensor, has_images = inp.tensor is not None, bool(inp.images)
    if has_tensor == has_images:
        raise errors.InvalidArgument("give exactly one input: a tensor or a list of encoded images",
                                     field="input")
    if has_tensor:
        x = np.asarray(inp.tensor)
        if x.ndim == 0:
            raise errors.InvalidArgument("the input tensor is a scalar; send a batch [N, ...]",
                                         field="input.tensor")
        if x.shape[0] > max_batch:
            raise errors.ResourceExhausted(f"batch of {x.shape[0]} exceeds the limit of {max_batch} per call",
                                           field="input")
        try:
            spec = resolve_spec(spec_from_dict(spec_dict), _with_shape(input_info, x.shape))
        except errors.InspectorError:
            spec = None  # a raw tensor needs no spec; overlays fall back to min-max display
        return PreparedInput(x, spec)
    if len(inp.images) > max_batch:
        raise errors.ResourceExhausted(
            f"batch of {len(inp.images)} images exceeds the limit of {max_batch} per call", field="input")
    spec = resolve_spec(spec_from_dict(spec_dict), input_info)
    originals: list[np.ndarray] = []
    x = preprocess_images(list(inp.images), spec, max_pixels=max_pixels, max_bytes=max_bytes, originals=originals)
    return PreparedInput(x, spec, originals=originals)


def _with_shape(info: TensorInfo, shape: tuple[int, ...]) -> TensorInfo:
    """The input info with its symbolic dims filled from a concrete tensor."""
    return TensorInfo(info.name, info.dtype, tuple(shape))


def as_input(x, preprocess: dict | None = None) -> InputData:
    """What a caller may pass as an input, as the client takes it: a numpy array (the input
    tensor as is), encoded image bytes, an image file path, a list of bytes/paths (a batch), an
    InputData, or a dict by input name (one input)."""
    import os
    from pathlib import Path

    if isinstance(x, dict):
        if not x:
            raise errors.InvalidArgument("no inputs were given", field="input")
        return InputData(preprocess=preprocess, named={str(k): as_input(v) for k, v in x.items()})
    if isinstance(x, InputData):
        if preprocess:
            return InputData(x.tensor, x.images, {**preprocess, **(x.preprocess or {})})
        return x

    def read(item) -> bytes:
        if isinstance(item, bytes | bytearray | memoryview):
            return bytes(item)
        if isinstance(item, str | os.PathLike):
            try:
                return Path(item).read_bytes()
            except OSError as exc:
                raise errors.InvalidArgument(f"cannot read image {str(item)!r}: {exc.strerror}",
                                             field="input") from None
        raise errors.InvalidArgument(f"an image must be encoded bytes or a file path, not "
                                     f"{type(item).__name__}", field="input")

    if isinstance(x, np.ndarray):
        return InputData(tensor=x, preprocess=preprocess)
    if isinstance(x, bytes | bytearray | memoryview | str | os.PathLike):
        return InputData(images=[read(x)], preprocess=preprocess)
    if isinstance(x, Sequence) and x and all(isinstance(i, np.ndarray) for i in x):
        return InputData(tensor=np.stack(x), preprocess=preprocess)
    if isinstance(x, Sequence):
        return InputData(images=[read(i) for i in x], preprocess=preprocess)
    raise errors.InvalidArgument(f"an input must be a numpy array, image bytes, a path or a list of them, "
                                 f"not {type(x).__name__}", field="input")
