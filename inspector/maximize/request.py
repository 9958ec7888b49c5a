"""Maximize as a request: the image size and input mapping from the model's preprocessing, the
config from request parameters, progress events and the result in their shared types."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence

import numpy as np
from inspector_client.types import Maximization, Progress

from inspector import errors
from inspector.maximize.config import MaximizeConfig
from inspector.maximize.loop import ToInput
from inspector.maximize.loop import maximize as climb

DEFAULT_SIZE = (128, 128)  # images on models without a fixed input size


def image_spec(stored: dict | None, input_info, size=None):
    """The model's resolved preprocessing; with `size`, images of that size (any model)."""
    from inspector.imaging.preprocess import resolve_spec
    from inspector.inputs import spec_from_dict

    spec = dict(stored or {})
    fixed = resolve_spec(spec_from_dict({**spec, "resize": DEFAULT_SIZE, "crop": None}), input_info).size
    if size is not None:  # the model's fixed height/width win; `size` sets the free ones
        wanted = (int(size), int(size)) if isinstance(size, int | float) else tuple(int(s) for s in size)
        spec["resize"] = tuple(f or w for f, w in zip(fixed, wanted, strict=True))
        spec.pop("crop", None)
    try:
        return resolve_spec(spec_from_dict(spec), input_info)
    except errors.InvalidArgument:  # a dynamic input size and no resize: the default where free
        spec["resize"], spec["crop"] = tuple(f or d for f, d in zip(fixed, DEFAULT_SIZE, strict=True)), None
        return resolve_spec(spec_from_dict(spec), input_info)


def input_mapping(spec) -> ToInput:
    """Display RGB in [0, 1] [N, H, W, 3] -> the model's input tensor, by the resolved spec (linear
    up to the final cast).

    The optimization runs in float; only what is fed is rounded to the input's dtype (uint8/int8
    images rounded and clipped, float16 rounded). The mapping carries its float32 twin without
    that final cast as `.linear`: the gradient pullback is measured on it, and the gradient model
    differentiates an integer input through a straight-through Cast (graph.autodiff.inputs)."""
    from inspector.imaging.preprocess import rgb_to_gray, to_tensor

    def mapped(rgb01: np.ndarray, dtype=None) -> np.ndarray:
        pixels = np.asarray(rgb01, np.float32) * np.float32(255.0)
        return to_tensor(rgb_to_gray(pixels) if spec.channels == 1 else pixels, spec, dtype)

    def to_input(rgb01: np.ndarray) -> np.ndarray:
        return mapped(rgb01)

    to_input.linear = lambda rgb01: mapped(rgb01, np.float32)  # type: ignore[attr-defined]
    return to_input


def config_from(objective: str | None, steps: int | None, preview_every: int | None,
                params: dict) -> MaximizeConfig:
    """A MaximizeConfig from request values; None leaves the config's own default."""
    params = dict(params)
    for key in ("jitter", "position"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    known = {f.name for f in dataclasses.fields(MaximizeConfig)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise errors.InvalidArgument(f"unknown maximize parameters {unknown}; known: {sorted(known)} "
                                     "and size", field="params")
    given = {k: v for k, v in {"objective": objective, "steps": steps, "preview_every": preview_every}.items()
             if v is not None}
    twice = sorted(k for k in given if k in params and params[k] != given[k])
    if twice:
        raise errors.InvalidArgument(f"{twice[0]} is given twice, as a field ({given[twice[0]]!r}) and in params "
                                     f"({params[twice[0]]!r}); give it once", field=twice[0])
    return MaximizeConfig(**{**params, **given})


def run(access, stored_spec: dict | None, input_info, layer: str | None, channels: Sequence[int], *,
        steps: int | None = None, objective: str | None = None, params: dict | None = None,
        preview_every: int | None = None) -> Generator[Progress, None, Maximization]:
    """Progress per step (previews as PNG), then the Maximization (without model metadata)."""
    from inspector.graph.select import resolve_tensors
    from inspector.imaging.render import render_image

    params = dict(params or {})
    size = params.pop("size", None)
    spec = image_spec(stored_spec, input_info, size)
    size = spec.crop or spec.resize or spec.size
    size = (int(size), int(size)) if isinstance(size, int | float) else tuple(int(s) for s in size)
    config = config_from(objective, steps, preview_every, params)
    tensor = resolve_tensors(access.graph, [layer])[0] if layer else ""  # "": the loop's choice
    gen = climb(access, tensor, list(channels), config, input_mapping(spec), size)

    def events() -> Generator[Progress, None, Maximization]:
        try:
            while True:
                p = next(gen)
                previews = {} if p.image is None else {str(i): render_image(img) for i, img in enumerate(p.image)}
                yield Progress(p.step + 1, config.steps, tuple(float(v) for v in p.objective),
                               previews=previews)  # steps done
        except StopIteration as stop:
            m = stop.value
        gain = [float(f / max(abs(i), 1e-12)) for f, i in zip(m.final_objective, m.initial_objective, strict=True)]
        return Maximization(np.asarray(m.inputs, np.float32), [render_image(img) for img in m.images],
                            np.asarray(m.objective, np.float32), np.asarray(m.initial_objective, np.float32),
                            np.asarray(m.final_objective, np.float32), layer=m.layer,
                            channels=[int(c) for c in channels], steps=config.steps, kind=config.objective,
                            size=list(size), gain=gain)

    return events()
