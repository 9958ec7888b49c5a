"""Run a batch of N images through a model whose input takes a fixed batch size (often 1).

Exported models often fix the batch dimension; maximization still optimizes all N images
together, and this splits each forward/backward call into model-sized chunks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inspector.model_access import ModelAccess


def fixed_batch(access: ModelAccess) -> int | None:
    """The model input's static batch size, or None when it is symbolic."""
    for inp in access.graph.graph.input:
        if inp.name == access.input_name:
            dims = inp.type.tensor_type.shape.dim
            if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
                return int(dims[0].dim_value)
    return None


class Chunked:
    """ModelAccess calls on [N, ...] split into chunks of the model's fixed batch size."""

    def __init__(self, access: ModelAccess, batch: int) -> None:
        self.access, self.batch = access, batch

    def __getattr__(self, name: str):  # graph, input_name, output_names, check_cancelled
        return getattr(self.access, name)

    def _split(self, n: int) -> list[slice]:
        return [slice(i, i + self.batch) for i in range(0, n, self.batch)]

    @staticmethod
    def _join(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def forward(self, x: np.ndarray, fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        return self._join([self.access.forward(x[s], fetch=fetch) for s in self._split(len(x))])

    def backward(self, x: np.ndarray, start: str, seed: np.ndarray, wrt: Sequence[str],
                 policy: str = "standard", fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        return self._join([self.access.backward(x[s], start=start, seed=seed[s], wrt=wrt,
                                                policy=policy, fetch=fetch)
                           for s in self._split(len(x))])
