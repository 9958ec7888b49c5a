"""Activation maximization as a call: progress events while it runs, then a Result."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence

import numpy as np

from inspector import errors
from inspector.results import Item, Progress, Result


def input_mapping(spec):
    """rgb01 [N,H,W,3] -> the model's input tensor, by the resolved preprocessing spec (linear)."""

    def to_input(rgb01: np.ndarray) -> np.ndarray:
        x = np.asarray(rgb01, np.float32) * np.float32(255.0 * spec.scale)
        if spec.channels == 1:
            x = (x @ np.asarray([0.299, 0.587, 0.114], np.float32))[..., None]
        x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        if spec.channel_order == "BGR" and spec.channels == 3:
            x = x[..., ::-1]
        if spec.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    return to_input


def maximize(loaded, spec, layer: str, channels: Sequence[int], *, steps: int, objective: str,
             params: dict, preview_every: int = 0) -> Generator[Progress, None, Result]:
    from inspector.graph.select import resolve_tensors
    from inspector.imaging.render import render_image
    from inspector.maximize import MaximizeConfig
    from inspector.maximize import maximize as run

    params = dict(params)
    size = params.pop("size", None) or (spec.crop or spec.resize or spec.size)
    size = (int(size), int(size)) if isinstance(size, int | float) else tuple(int(s) for s in size)
    for key in ("jitter", "position"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    known = {f.name for f in dataclasses.fields(MaximizeConfig)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise errors.InvalidArgument(f"unknown maximize parameters {unknown}; known: {sorted(known)} "
                                     "and size", field="params")
    config = MaximizeConfig(objective=objective, steps=steps, preview_every=preview_every, **params)
    if objective in ("logit", "probability"):
        tensor = layer or loaded.access.output_names[0]
    else:
        tensor = resolve_tensors(loaded.model, [layer])[0]
    gen = run(loaded.access, tensor, list(channels), config, input_mapping(spec), size)
    try:
        while True:
            p = next(gen)
            previews = ()
            if p.image is not None:
                previews = tuple(Item("preview", str(i), render_image(img), "image/png")
                                 for i, img in enumerate(p.image))
            yield Progress(p.step + 1, steps, tuple(float(v) for v in p.objective), previews=previews)  # steps done
    except StopIteration as stop:
        m = stop.value
    result = Result(loaded.run_metadata(), info={
        "layer": tensor, "channels": list(channels), "steps": steps, "objective": objective,
        "size": list(size),
        "gain": [float(f / max(abs(i), 1e-12)) for f, i in zip(m.final_objective, m.initial_objective,
                                                              strict=True)]})
    result.add("inputs", "inputs", np.asarray(m.inputs, np.float32))
    for i, img in enumerate(m.images):
        result.add("png", str(i), render_image(img))
    result.add("objective", "objective", np.asarray(m.objective, np.float32))
    result.add("objective", "initial_objective", np.asarray(m.initial_objective, np.float32))
    result.add("objective", "final_objective", np.asarray(m.final_objective, np.float32))
    return result
