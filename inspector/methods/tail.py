"""Run the network from a layer on: the layer's activation is replaced by a given value.

Ablation-CAM and Recipro-CAM score edited feature maps. The ModelAccess protocol has no such call
yet, so an access that offers `forward_replacing(x, {layer: value}, fetch)` is used as is; otherwise a
variant of the model with the layer as an extra graph input runs on a plain onnxruntime session.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper

from inspector.methods.run import Run

_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def with_layer_as_input(model: onnx.ModelProto, layer: str, outputs: list[str]) -> onnx.ModelProto:
    """A copy whose tensor `layer` is a graph input (its producer's output is renamed away)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        for i, name in enumerate(node.output):
            if name == layer:
                node.output[i] = f"{layer}::replaced"
    out.graph.input.append(helper.make_tensor_value_info(layer, TensorProto.FLOAT, None))
    have = {o.name for o in out.graph.output}
    for name in outputs:
        if name not in have:
            out.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return out


def _runner(run: Run, layer: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    access = run.access
    replacing = getattr(access, "forward_replacing", None)
    if replacing is not None:
        return lambda x, value: replacing(x, {layer: value}, [run.tensor])[run.tensor]
    import onnxruntime as ort

    try:
        cache = _SESSIONS.setdefault(access, {})
    except TypeError:  # an access that cannot be weakly referenced: no caching
        cache = {}
    key = (layer, run.tensor)
    if key not in cache:
        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        variant = with_layer_as_input(access.graph, layer, [run.tensor])
        providers = list(getattr(access, "_providers", ["CPUExecutionProvider"]))
        cache[key] = ort.InferenceSession(variant.SerializeToString(), opts, providers=providers)
    sess = cache[key]
    feeds = {i.name for i in sess.get_inputs()}

    def forward(x: np.ndarray, value: np.ndarray) -> np.ndarray:
        feed = {layer: np.ascontiguousarray(value, np.float32)}
        if access.input_name in feeds:
            feed[access.input_name] = np.ascontiguousarray(x)
        return sess.run([run.tensor], feed)[0]

    return forward


def tail_scores(run: Run, x: np.ndarray, layer: str, count: int,
                edits: Callable[[int, int], tuple[np.ndarray, np.ndarray]], batch_size: int) -> np.ndarray:
    """Target scores of `count` edited activations of the batch x; edits(i0, i1) gives (values, rows of x)."""
    forward = _runner(run, layer)
    out = np.empty(count, np.float64)
    for i0 in range(0, count, batch_size):
        run.access.check_cancelled()
        values, rows = edits(i0, min(count, i0 + batch_size))
        result = forward(x[rows], values)
        out[i0:i0 + len(rows)] = (run.seed[rows] * result).reshape(len(rows), -1).sum(axis=1)
    return out
