"""Model outputs and intermediate feature maps: raw, float16, PNG grids, per-channel stats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inspector.results import Result


@dataclass(frozen=True)
class RenderOptions:
    cmap: str = "viridis"
    normalize: str = "channel"
    channels: tuple[int, ...] | None = None
    top_k: int | None = None


def infer(loaded, x: np.ndarray) -> Result:
    result = Result(loaded.run_metadata())
    outputs = loaded.access.forward(x)
    for name in loaded.access.output_names:
        result.add("output", name, outputs[name])
    return result


def feature_maps(loaded, x: np.ndarray, layers: Sequence[str] | None, *, raw: bool = True,
                 png: bool = False, stats: bool = False, float16: bool = False,
                 render: RenderOptions | None = None) -> Result:
    """The chosen tensors for the batch x, in the forms asked for."""
    from inspector.graph.select import resolve_tensors
    from inspector.imaging.render import channel_stats, render_feature_grid

    names = loaded.access.memo(("select", tuple(layers or ())),  # default/"all" run shape inference
                               lambda: resolve_tensors(loaded.model, layers))
    values = loaded.access.forward_exposed(x, names, float16=float16)
    result = Result(loaded.run_metadata(), info={"tensors": list(names)})
    render = render or RenderOptions()
    for name in names:
        t = values[name]
        if raw:
            result.add("feature", name, t)
        if png:
            for i in range(t.shape[0] if t.ndim else 0):
                result.add("png", f"{name}/{i}", render_feature_grid(
                    np.asarray(t[i], np.float32), cmap=render.cmap, normalize=render.normalize,
                    channels=render.channels, top_k=render.top_k))
        if stats and t.ndim >= 2:
            for stat, arr in channel_stats(t).items():
                result.add("stats", f"{name}/{stat}", np.asarray(arr))
    return result
