"""ModelAccess: what a method (CAM, saliency, maximization, audit) may ask of a loaded model
(the protocol; runtime/access.py implements it over onnxruntime).

The core implements it over onnxruntime sessions (forward: exposed-tensor models; backward:
models from graph.autodiff), cached per (model, selection, provider). Methods see only this,
so each method is plain numpy over the arrays it gets back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnx


class ModelAccess(Protocol):
    @property
    def graph(self) -> onnx.ModelProto:
        """The original model (read-only), for layer choice and reading weights."""

    @property
    def input_name(self) -> str:
        """The model's image input (the first graph input that is not an initializer)."""

    @property
    def output_names(self) -> tuple[str, ...]:
        """The model's graph outputs, in order."""

    def forward(self, x: np.ndarray, fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Run on the batch `x`; return every graph output plus each tensor named in `fetch`."""

    def backward(self, x: np.ndarray, start: str, seed: np.ndarray, wrt: Sequence[str],
                 policy: str = "standard", fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Return {w: d(sum(seed * start)) / d(w)} for every w in wrt, plus fetched forward tensors.

        `seed` has the shape of `start` for this batch. `policy` is "standard",
        "guided_backprop" or "deconvnet". Raises errors.FailedPrecondition naming the ops
        without a gradient rule when the model cannot be differentiated.
        """

    def forward_replacing(self, x: np.ndarray, values: dict[str, np.ndarray],
                          fetch: Sequence[str]) -> dict[str, np.ndarray]:
        """Run with the tensors named in `values` replaced by those arrays (the network from a
        layer on, as Ablation-CAM needs); return the tensors in `fetch`."""

    def check_cancelled(self) -> None:
        """Raise errors.Cancelled if the caller has gone away; long loops call it each step."""
