"""Conv/Gemm weights: raw tensors, filter grids, histograms and per-filter statistics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inspector.results import Result


def filter_stats(w: np.ndarray) -> dict[str, np.ndarray]:
    """Per output filter (axis 0): L2 norm, fraction of exact zeros, min, max."""
    flat = np.asarray(w, np.float64).reshape(w.shape[0], -1) if w.ndim > 1 else \
        np.asarray(w, np.float64).reshape(-1, 1)
    return {"l2_norm": np.linalg.norm(flat, axis=1), "sparsity": (flat == 0).mean(axis=1),
            "min": flat.min(axis=1), "max": flat.max(axis=1)}


def weights(loaded, layers: Sequence[str] | None, *, raw: bool = True, png: bool = False,
            histogram: bool = False, stats: bool = False, mode: str = "auto",
            cmap: str = "RdBu_r") -> Result:
    from inspector.graph.weights import find_weights
    from inspector.imaging.render import render_filter_grid, render_histogram

    refs = find_weights(loaded.model, layers)
    result = Result(loaded.run_metadata(), info={
        "weights": {r.initializer: {"layer": r.node, "op_type": r.op_type, "role": r.role} for r in refs}})
    for ref in refs:
        arr = ref.array
        if raw:
            result.add("weight", ref.initializer, arr)
        if png and ref.role == "weight" and arr.ndim in (2, 4):
            result.add("png", ref.initializer, render_filter_grid(arr, mode=mode or "auto", cmap=cmap or "RdBu_r"))
        if histogram:
            result.add("histogram", ref.initializer,
                       render_histogram(arr.ravel(), title=f"{ref.node}: {ref.initializer}"))
        if stats:
            for stat, values in filter_stats(arr).items():
                result.add("stats", f"{ref.initializer}/{stat}", values)
    return result
