"""Attention in CNN-like graphs: transformer attention probabilities (MatMul -> scale -> Softmax ->
MatMul) with attention rollout, and squeeze-and-excitation channel gates (pool -> ... -> sigmoid -> Mul)."""

from __future__ import annotations

import math

import numpy as np
import onnx

from inspector.errors import FailedPrecondition, InvalidArgument
from inspector.methods.base import Explanation, Method
from inspector.methods.layers import check_layers
from inspector.methods.maps import scale_maps, upsample
from inspector.methods.run import Run
from inspector.model_access import ModelAccess

SCALE_OPS = {"Div", "Mul", "Add", "Where", "Cast", "Identity"}
GATES = {"Sigmoid", "HardSigmoid"}
POOLS = {"GlobalAveragePool", "ReduceMean", "GlobalMaxPool", "ReduceMax"}


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def _upstream(producer: dict[str, onnx.NodeProto], tensor: str, depth: int) -> list[onnx.NodeProto]:
    """Nodes within `depth` steps above `tensor`."""
    found, frontier = [], [tensor]
    for _ in range(depth):
        nodes = [producer[t] for t in frontier if t in producer]
        found.extend(nodes)
        frontier = [i for n in nodes for i in n.input if i]
    return found


def attention_probabilities(model: onnx.ModelProto) -> list[str]:
    """Softmax outputs that sit between two MatMuls (scores from Q.K^T, output weights V)."""
    producer = _producers(model)
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.op_type)
    found = []
    for n in model.graph.node:
        if n.op_type != "Softmax" or "MatMul" not in consumers.get(n.output[0], []):
            continue
        node = producer.get(n.input[0])
        while node is not None and node.op_type in SCALE_OPS:
            node = producer.get(node.input[0])
        if node is not None and node.op_type == "MatMul":
            found.append(n.output[0])
    return found


def squeeze_excitation_gates(model: onnx.ModelProto) -> list[str]:
    """Gate tensors g of blocks y = x * g, where g = sigmoid(... pool(x)) (SE / channel attention)."""
    producer = _producers(model)
    gates = []
    for n in model.graph.node:
        if n.op_type != "Mul" or len(n.input) != 2:
            continue
        for gate, feature in (n.input, n.input[::-1]):
            g = producer.get(gate)
            if g is None or g.op_type not in GATES:
                continue
            if any(p.op_type in POOLS and p.input[0] == feature for p in _upstream(producer, gate, 8)):
                gates.append(gate)
    return list(dict.fromkeys(gates))


WINDOWS = ("the model attends within windows or merges tokens between stages (Swin-like), so its attention "
           "maps cannot be multiplied across layers; explain it with gradcam on a stage output (layers=[...], "
           "a [N, tokens, C] or [N, h, w, C] tensor)")


def rollout(maps: list[np.ndarray], n: int, head_fusion: str, names: list[str] | None = None) -> np.ndarray:
    """Abnar & Zuidema's rollout: fuse heads, add identity for residuals, renormalize, multiply layers.

    Attention of windows (Swin: [N * windows, heads, T, T], windows and tokens differing per stage)
    is refused with FailedPrecondition naming the tensor."""
    names = names or [f"attention {i}" for i in range(len(maps))]
    result, folded = None, None
    for name, a in zip(names, maps, strict=True):
        a = np.asarray(a, np.float64)
        shape = list(a.shape)
        if a.ndim == 4:
            if a.shape[0] != n:
                raise FailedPrecondition(f"attention tensor '{name}' has shape {shape}: its first axis is not the "
                                         f"batch of {n}; {WINDOWS}", field="layers")
            a = {"mean": a.mean, "max": a.max, "min": a.min}[head_fusion](axis=1)
        elif a.ndim == 3:  # heads may be folded into the batch: [N * heads, T, T], alike in every layer
            if a.shape[0] % n or (folded is not None and folded != a.shape[0]):
                raise FailedPrecondition(f"attention tensor '{name}' has shape {shape}: its first axis is not a "
                                         f"multiple of the batch of {n} or differs from the layers before "
                                         f"({folded}); {WINDOWS}", field="layers")
            folded = a.shape[0]
            if a.shape[0] != n:
                a = a.reshape(n, -1, *a.shape[1:]).mean(axis=1)
        if a.ndim != 3 or a.shape[1] != a.shape[2]:
            raise InvalidArgument(f"attention tensor '{name}' of shape {shape} is not [N, heads, T, T] or [N, T, T]",
                                  field="layers")
        if result is not None and result.shape != a.shape:
            raise FailedPrecondition(f"attention tensor '{name}' has {a.shape[1]} tokens, the layers before "
                                     f"{result.shape[1]}; {WINDOWS}", field="layers")
        a = 0.5 * a + 0.5 * np.eye(a.shape[1])
        a /= a.sum(axis=2, keepdims=True)
        result = a if result is None else a @ result
    return result


def token_grid(r: np.ndarray, size: tuple[int, int], grid: object = None) -> np.ndarray:
    """[N, T, T] rollout -> [N, gh, gw] token map.

    With a class token (T - 1 tokens on the grid) its row is used, else the mean over rows. The
    grid is `grid` (gh, gw) if given, else square, else the factorization of T closest to the
    image's aspect ratio.
    """
    t = r.shape[1]
    if grid is not None:
        gh, gw = (int(v) for v in grid)  # type: ignore[union-attr]
        if gh * gw not in (t, t - 1):
            raise InvalidArgument(f"grid {gh}x{gw} does not match {t} attention tokens (with or without a "
                                  "class token)", field="grid")
    elif t > 1 and math.isqrt(t - 1) ** 2 == t - 1:
        gh = gw = math.isqrt(t - 1)
    elif math.isqrt(t) ** 2 == t:
        gh = gw = math.isqrt(t)
    else:
        pairs = [(h, t // h) for h in range(1, t + 1) if t % h == 0]
        gh, gw = min(pairs, key=lambda p: abs(math.log(p[0] / p[1]) - math.log(size[0] / size[1])))
    row = r[:, 0, 1:] if gh * gw == t - 1 else r.mean(axis=1)
    return row.reshape(len(r), gh, gw)


class AttentionRollout(Method):
    name = "attention_rollout"
    uses_gradients = False
    defaults = {"head_fusion": "mean", "grid": None}
    doc = "Product of head-averaged attention (+ identity) over layers (Abnar & Zuidema, ACL 2020)."

    def layers_for(self, access: ModelAccess, layers: list[str], input_shape: tuple[int, ...] = ()) -> list[str]:
        chosen = check_layers(access.graph, layers) if layers else attention_probabilities(access.graph)
        if not chosen:
            raise InvalidArgument("the model has no attention blocks (MatMul -> Softmax -> MatMul); "
                                  "attention_rollout needs a transformer-style model", field="layers")
        return chosen

    def fetch_for(self, access: ModelAccess, layers: list[str]) -> list[str]:
        return [*layers, *squeeze_excitation_gates(access.graph)]

    def compute(self, run: Run, layers: list[str], params: dict[str, object]) -> Explanation:
        if params["head_fusion"] not in ("mean", "max", "min"):
            raise InvalidArgument("head_fusion must be mean, max or min", field="head_fusion")
        n = len(run.x)
        grid = token_grid(rollout([run.outputs[t] for t in layers], n, str(params["head_fusion"]), list(layers)),
                          run.size, params["grid"])
        extras = {f"attention/{t}": np.asarray(run.outputs[t], np.float32) for t in layers}
        extras.update({f"channel_attention/{t}": run.outputs[t].reshape(n, -1)
                       for t in squeeze_excitation_gates(run.access.graph)})
        return run.finish(self.name, scale_maps(upsample(grid, run.size)), params, layers,
                          layer_heatmap=scale_maps(grid), extras=extras)
