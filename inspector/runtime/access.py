"""OrtModelAccess: the ModelAccess protocol over real onnxruntime sessions.

Forward runs use a variant of the model with the fetched tensors exposed as outputs; backward
runs use the gradient model from graph.autodiff. Both are built once per (selection, policy)
and cached, so a new class index or seed only changes the seed input.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from inspector import errors


def _plain_session(model: onnx.ModelProto, providers: Sequence[str]) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=list(providers))


def _expose(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    have = {o.name for o in out.graph.output}
    for name in names:
        if name not in have:
            out.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            have.add(name)
    return out


class OrtModelAccess:
    """ModelAccess for one model on one provider list; thread-safe, variants built lazily."""

    def __init__(self, model: onnx.ModelProto, providers: Sequence[str] = ("CPUExecutionProvider",),
                 cancelled: Callable[[], bool] | None = None) -> None:
        self._model = model
        self._providers = [p if p.endswith("ExecutionProvider") else
                           {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}[p.lower()]
                           for p in providers]
        self._cancelled = cancelled
        self._lock = threading.Lock()
        self._forward: dict[tuple[str, ...], ort.InferenceSession] = {}
        self._backward: dict[tuple, tuple[object, ort.InferenceSession]] = {}
        inits = {i.name for i in model.graph.initializer}
        self._inputs = [i.name for i in model.graph.input if i.name not in inits]

    @property
    def graph(self) -> onnx.ModelProto:
        return self._model

    @property
    def input_name(self) -> str:
        return self._inputs[0]

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self._model.graph.output)

    def check_cancelled(self) -> None:
        if self._cancelled is not None and self._cancelled():
            raise errors.Cancelled("the call was cancelled; work stopped")

    def forward(self, x: np.ndarray, fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        key = tuple(dict.fromkeys(fetch))
        with self._lock:
            sess = self._forward.get(key)
            if sess is None:
                sess = self._forward[key] = _plain_session(_expose(self._model, key), self._providers)
        names = [o.name for o in sess.get_outputs()]
        values = sess.run(names, {self.input_name: x})
        return dict(zip(names, values, strict=True))

    def backward(self, x: np.ndarray, start: str, seed: np.ndarray, wrt: Sequence[str],
                 policy: str = "standard", fetch: Sequence[str] = ()) -> dict[str, np.ndarray]:
        from inspector.graph.autodiff import build_gradient_model

        key = (start, tuple(wrt), policy, tuple(fetch))
        with self._lock:
            entry = self._backward.get(key)
            if entry is None:
                gm = build_gradient_model(self._model, start, list(wrt), policy=policy, fetch=list(fetch))
                entry = self._backward[key] = (gm, _plain_session(gm.model, self._providers))
        gm, sess = entry
        wanted = {**{w: o for w, o in gm.gradient_outputs.items()}, **gm.fetch_outputs}
        values = sess.run(list(wanted.values()), {self.input_name: x,
                                                  gm.seed_input: np.ascontiguousarray(seed, np.float32)})
        return dict(zip(wanted.keys(), values, strict=True))
