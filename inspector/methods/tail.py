"""Run the network from a layer on: the layer's activation is replaced by a given value.

Ablation-CAM and Recipro-CAM score edited feature maps through ModelAccess.forward_replacing,
which runs a cached variant of the model with the layer as an extra graph input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inspector.methods.run import Run


def _runner(run: Run, layer: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda x, value: run.access.forward_replacing(x, {layer: value}, [run.tensor])[run.tensor]


def tail_scores(run: Run, x: np.ndarray, layer: str, count: int,
                edits: Callable[[int, int], tuple[np.ndarray, np.ndarray]], batch_size: int) -> np.ndarray:
    """Target scores of `count` edited activations of the batch x; edits(i0, i1) gives (values, rows of x)."""
    forward = _runner(run, layer)
    out = np.empty(count, np.float64)
    batch_size = 1 if run.batch_axis is None else batch_size  # a target without a batch axis: one per run
    for i0 in range(0, count, batch_size):
        run.access.check_cancelled()
        values, rows = edits(i0, min(count, i0 + batch_size))
        result = forward(x[rows], values)
        out[i0:i0 + len(rows)] = run.image_scores(result, rows)
    return out
