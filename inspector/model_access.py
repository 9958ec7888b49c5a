"""ModelAccess: what a method (CAM, saliency, maximization, audit) may ask of a loaded model
(the protocol; runtime/access.py implements it over onnxruntime).

The core implements it over onnxruntime sessions (forward: exposed-tensor models; backward:
models from graph.autodiff), cached per (model, selection, provider). Methods see only this,
so each method is plain numpy over the arrays it gets back.

Every run takes a batch of any size N, whatever batch the model's input declares: the access
owns shapes (it runs a fixed-batch model freed or in runs of its batch; see runtime/access.py),
and its errors name the N the caller sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import onnx

if TYPE_CHECKING:
    from inspector.runtime.sessions import Session


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

    @property
    def input_shapes(self) -> dict[str, tuple[int | str | None, ...] | None]:
        """Each model input's declared dims: int where fixed, the symbolic name or None where not
        (None for the whole shape when the model declares none)."""

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the image input declares (None when symbolic). Informational only:
        every run below accepts any batch and splits or frees it as the model allows."""

    def providers_used(self) -> tuple[str, ...]:
        """The execution providers onnxruntime actually used for the latest run (after any
        fallback, e.g. CUDA to CPU)."""

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """`compute()` once per key for this model (a default layer, a layer selection, audit
        plans): values that depend on the model alone."""

    def session_for_outputs(self, names: Sequence[str], *, float16: bool = False) -> tuple[Session, Any]:
        """(the cached session whose outputs include `names`, {name: its output name}). A raw
        session runs only the batch the model accepts; prefer forward/forward_exposed. Calling it
        with no names creates the plain session (a load check)."""

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

    def forward_exposed(self, x: np.ndarray, names: Sequence[str], *,
                        float16: bool = False) -> dict[str, np.ndarray]:
        """Only the tensors in `names` for the batch `x` (each cast to float16 inside the graph
        when `float16`), without the graph outputs."""

    def forward_variant(self, key: tuple, build: Callable[[onnx.ModelProto], onnx.ModelProto],
                        x: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Run `outputs` of the variant `build(model)` (built once per `key`, e.g. the audit model
        of in-graph reductions) on the batch `x`. `build` gets the model the access runs, whose
        batch dimension may have been made symbolic; outputs that carry the batch must carry it on
        axis 0, except a 1-D Shape of a batch tensor."""

    def backward_top1(self, x: np.ndarray, start: str, wrt: Sequence[str], policy: str = "standard",
                      fetch: Sequence[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """backward() seeded by each image's top-1 class of `start` ([N, K]), in one run where
        possible: (gradients by wrt name, forward values of `start` and of `fetch`)."""

    def holding(self, others: dict[str, np.ndarray]) -> AbstractContextManager:
        """A block in which every run also feeds `others` to the model inputs besides the image
        input (`input_name`): one row shared by every image, or one row per image of the run."""

    def check_cancelled(self) -> None:
        """Raise errors.Cancelled if the caller has gone away; long loops call it each step."""
