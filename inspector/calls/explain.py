"""Explain: run an attribution method and render its overlays; Evaluate: faithfulness metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inspector.results import Result


def explain(loaded, prepared, method: str, target, layers: Sequence[str] | None, params: dict,
            *, overlay: bool = True, cmap: str = "jet", alpha: float = 0.5) -> Result:
    from inspector.graph.select import resolve_tensors
    from inspector.imaging.render import render_overlay
    from inspector.methods import get_method
    from inspector.methods.base import Target

    impl = get_method(method or "gradcam")
    tensors = resolve_tensors(loaded.model, list(layers)) if layers else None  # node names too
    exp = impl.explain(loaded.access, prepared.x, target or Target(), tensors, **(params or {}))
    result = Result(loaded.run_metadata(), info={
        "method": exp.method, "layers": list(exp.layers), "targets": list(exp.targets),
        "score": [float(s) for s in exp.score],
        "score_after": None if exp.score_after is None else [float(s) for s in exp.score_after],
        "params": dict(exp.params)})  # the service edge makes them JSON
    result.add("heatmap", "heatmap", np.asarray(exp.heatmap, np.float32))
    if exp.layer_heatmap is not None:
        result.add("layer_heatmap", "layer_heatmap", np.asarray(exp.layer_heatmap, np.float32))
    if exp.attribution is not None:
        result.add("attribution", "attribution", np.asarray(exp.attribution, np.float32))
    for name, value in exp.extras.items():
        result.add("extra", name, np.asarray(value))
    if overlay:
        for i in range(exp.heatmap.shape[0]):
            result.add("overlay", str(i), render_overlay(prepared.display(i), exp.heatmap[i],
                                                         cmap=cmap or "jet", alpha=alpha))
    return result


def evaluate(loaded, prepared, heatmap: np.ndarray, target, metrics: Sequence[str], params: dict) -> Result:
    from inspector.methods import evaluate as run_metrics
    from inspector.methods.base import Explanation, Target

    heat = np.asarray(heatmap, np.float32)
    if heat.ndim == 2:
        heat = heat[None]
    exp = Explanation(method="given", heatmap=heat, layer_heatmap=None, attribution=None, layers=[],
                      targets=[], score=np.zeros(heat.shape[0]), score_after=None, params={}, extras={})
    values = run_metrics(loaded.access, prepared.x, exp, list(metrics), target=target or Target(),
                         **(params or {}))
    result = Result(loaded.run_metadata(), info={"metrics": list(values)})
    for name, value in values.items():
        result.add("metric", name, np.asarray(value))
    return result
