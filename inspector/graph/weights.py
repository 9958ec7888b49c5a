"""Weights and biases of Conv / ConvTranspose / Gemm / MatMul layers as float32 arrays.

Exporters often hide a weight behind Identity, Cast or DequantizeLinear nodes, or store it in a
Constant node; the array returned is the value the layer actually consumes. Quantized layers
(QLinearConv, QGemm, QLinearMatMul, ConvInteger, MatMulInteger) give their dequantized float
weights, (q - zero_point) * scale with per-channel scales along the output-channel axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx
from onnx import helper

from inspector import errors
from inspector.graph.constants import PASS_THROUGH, Constants
from inspector.graph.info import QUANTIZED_WEIGHT_OPS, WEIGHT_OPS, node_names, weight_inputs
from inspector.graph.select import unknown_selectors_message

# Quantized layer -> (scale input, zero point input) of its weight; None: not an input (the
# integer ops, whose scale is the Mul that follows them in onnxruntime's dynamic quantization).
_WEIGHT_QUANTIZATION = {"QLinearConv": (4, 5), "QGemm": (4, 5), "QLinearMatMul": (4, 5),
                        "ConvInteger": (None, 3), "MatMulInteger": (None, 3)}


@dataclass(frozen=True)
class WeightRef:
    """One weight or bias tensor of a layer, by the initializer (or Constant) it comes from."""

    initializer: str
    node: str
    op_type: str
    role: Literal["weight", "bias"]
    array: np.ndarray = field(repr=False, compare=False)


def find_weights(model: onnx.ModelProto, selectors: Sequence[str] | None = None) -> list[WeightRef]:
    """Weights (then biases) of every weighted layer, or of what the selectors name.

    A selector is a node name or one of the node's output tensor names (all of that layer's
    weights), or a weight tensor: its initializer name or a tensor between the initializer and
    the layer (Identity / Cast / DequantizeLinear outputs), which selects that tensor only.
    """
    graph = model.graph
    consts = Constants(graph)
    names = node_names(model)
    found = [(i, role, tensor) for i, node in enumerate(graph.node)
             for role, tensor in zip(("weight", "bias"), weight_inputs(node, consts), strict=False)]
    chosen = found if not selectors else _select(graph, consts, names, found, selectors)
    reader = _Reader(graph, consts)
    refs: list[WeightRef] = []
    for i, role, tensor in chosen:
        node = graph.node[i]
        refs.append(WeightRef(initializer=consts.root(tensor) or tensor, node=names[i],
                              op_type=node.op_type, role=role,
                              array=reader.value(node, role, tensor)))
    return refs


def _chain(consts: Constants, tensor: str) -> list[str]:
    """`tensor` and the tensors it is computed from through pass-through nodes, to the root."""
    chain = [tensor]
    while not consts.is_root(chain[-1]):
        node = consts.producers.get(chain[-1])
        if node is None or node.op_type not in PASS_THROUGH or not node.input or node.input[0] in chain:
            break
        chain.append(node.input[0])
    return chain


def _select(graph: onnx.GraphProto, consts: Constants, names: list[str],
            found: list[tuple[int, str, str]], selectors: Sequence[str]) -> list[tuple[int, str, str]]:
    """The (node index, role, tensor) entries the selectors name, in graph order."""
    by_node = {n: i for i, n in enumerate(names)}
    by_tensor: dict[str, list[tuple[int, str, str]]] = {}
    for entry in found:
        for name in _chain(consts, entry[2]):
            by_tensor.setdefault(name, []).append(entry)
    by_output = {o: i for i, node in enumerate(graph.node) for o in node.output if o}
    unknown = [s for s in selectors if s not in by_node and s not in by_tensor and s not in by_output]
    if unknown:
        known = [*by_node, *by_tensor, *by_output]
        raise errors.InvalidArgument(
            unknown_selectors_message(unknown, known, "layer, layer output or weight tensor")
            + " Pass a layer (node) name, one of its outputs, or a weight's initializer name "
            "(the layer table's weight_names).", field="layers")
    wanted: set[tuple[int, str, str]] = set()
    nodes: list[int] = []
    for s in selectors:  # a node name first, then a weight tensor, then a node output
        if s in by_node or s not in by_tensor:
            nodes.append(by_node[s] if s in by_node else by_output[s])
        else:
            wanted.update(by_tensor[s])
    bare = [names[i] for i in dict.fromkeys(nodes) if not any(e[0] == i for e in found)]
    if bare:
        raise errors.InvalidArgument(
            f"layer {', '.join(map(repr, bare))} has no constant weights; weights exist for "
            f"{'/'.join(sorted({*WEIGHT_OPS, *QUANTIZED_WEIGHT_OPS}))} layers whose weight is an "
            "initializer or Constant", field="layers")
    wanted.update(e for e in found if e[0] in set(nodes))
    return [e for e in found if e in wanted]


class _Reader:
    """Weight values as float32, dequantized for quantized layers."""

    def __init__(self, graph: onnx.GraphProto, consts: Constants) -> None:
        self.consts = consts
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def value(self, node: onnx.NodeProto, role: str, tensor: str) -> np.ndarray:
        array = self.consts.value(tensor)
        if node.op_type not in _WEIGHT_QUANTIZATION:
            return np.asarray(array, dtype=np.float32)
        axis = self._channel_axis(node, array.ndim)
        scale_at, zero_at = _WEIGHT_QUANTIZATION[node.op_type]
        scale = (self._input(node, scale_at) if scale_at is not None
                 else self._integer_scale(node))
        if role == "bias":  # int32 with scale x_scale * w_scale and no zero point
            return _dequantize(array, None, self._input(node, 1) * scale, 0)
        return _dequantize(array, self._input(node, zero_at), scale, axis)

    def _input(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        name = node.input[i] if i < len(node.input) else ""
        return np.asarray(self.consts.value(name), np.float32) if name else None

    @staticmethod
    def _channel_axis(node: onnx.NodeProto, ndim: int) -> int:
        """The axis per-channel scales run along: output channels (0) for convolutions, the
        output columns of a [K, N] matrix (1), or 0 for QGemm's B stored [N, K] (transB)."""
        if node.op_type in ("QLinearConv", "ConvInteger") or ndim < 2:
            return 0
        trans_b = next((helper.get_attribute_value(a) for a in node.attribute
                        if a.name == "transB"), 0)
        return 0 if node.op_type == "QGemm" and trans_b else ndim - 1

    def _integer_scale(self, node: onnx.NodeProto) -> np.ndarray:
        """The weight scale of ConvInteger / MatMulInteger from onnxruntime's pattern
        Mul(Cast(y), Mul(x_scale, w_scale)), x_scale coming from the DynamicQuantizeLinear of
        input 0; 1 (the integer weights minus the zero point) when the graph differs."""
        x_scale = self.consts.producers.get(node.input[0])
        x_scale = x_scale.output[1] if x_scale is not None and x_scale.op_type == (
            "DynamicQuantizeLinear") and len(x_scale.output) > 1 else None
        for cast in self.consumers.get(node.output[0], []):
            if cast.op_type != "Cast":
                continue
            for mul in self.consumers.get(cast.output[0], []):
                other = [i for i in mul.input if i != cast.output[0]] if mul.op_type == "Mul" else []
                product = self.consts.producers.get(other[0]) if len(other) == 1 else None
                if product is None or product.op_type != "Mul" or x_scale not in product.input:
                    continue
                w_scale = [i for i in product.input if i != x_scale]
                if len(w_scale) == 1 and self.consts.root(w_scale[0]):
                    return np.asarray(self.consts.value(w_scale[0]), np.float32)
        return np.ones((), np.float32)


def _dequantize(q: np.ndarray, zero: np.ndarray | None, scale: np.ndarray | None,
                axis: int) -> np.ndarray:
    """(q - zero) * scale, a zero point or scale with one value per slice along `axis`."""
    values = q.astype(np.float32)
    shape = [1] * values.ndim
    if values.ndim:
        shape[axis] = -1
    for part, apply in ((zero, np.subtract), (scale, np.multiply)):
        if part is not None:
            part = np.asarray(part, np.float32)
            values = apply(values, part.reshape(shape) if part.size > 1 else part.reshape(()))
    return values.astype(np.float32)
