"""Which part of a graph is differentiated: tensors on a path from a `wrt` tensor to `start`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from ...errors import InvalidArgument
from .emitter import FLOAT_TYPES
from .registry import differentiable_inputs

# Quantizers and quantized kernels: their integer outputs still carry a gradient (a float, see
# rules/quantized.py); so does an integer output of a layout op (Flatten, MaxPool, ...) whose
# input carried one and whose element type it keeps.
STRAIGHT_THROUGH = frozenset({
    "QuantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
    "MatMulInteger", "QGemm", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
    "QLinearAveragePool", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax",
})


@dataclass(frozen=True)
class Path:
    nodes: list[onnx.NodeProto]  # nodes to differentiate, in forward (topological) order
    needs: set[str]              # tensors a gradient must reach


def tensor_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name a graph defines: inputs, initializers and node outputs."""
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    return names | {o for n in graph.node for o in n.output if o}


def check_names(graph: onnx.GraphProto, start: str, wrt: Sequence[str]) -> None:
    """Fail early, naming the tensor, when start or a wrt tensor is not usable."""
    names = tensor_names(graph)
    weights = {t.name for t in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output}
    for role, name in [("start", start), *(("wrt", w) for w in wrt)]:
        if name not in names:
            raise InvalidArgument(f"The {role} tensor '{name}' is not in the model; use a graph "
                                  "input or a node output name (see the model's layer list).",
                                  field=role)
        if role == "wrt" and name in weights:
            raise InvalidArgument(f"Gradients with respect to weights or constants ('{name}') are "
                                  "not supported; choose an input or an activation tensor.",
                                  field="wrt")
    if not wrt:
        raise InvalidArgument("Name at least one tensor to differentiate with respect to.",
                              field="wrt")


def find_path(graph: onnx.GraphProto, start: str, wrt: Sequence[str],
              types: dict[str, tuple[int, object]], through: frozenset[str] | set[str] = frozenset()) -> Path:
    """Nodes between `wrt` and `start` through differentiable float (or quantized) inputs.

    `through` names integer tensors that still carry a gradient (the straight-through Cast of an
    integer model input, see inputs.py).
    """
    for w in wrt:
        elem = types.get(w, (0, None))[0]
        if elem and elem not in FLOAT_TYPES:
            raise InvalidArgument(
                f"The wrt tensor '{w}' holds {TensorProto.DataType.Name(elem).lower()} values; "
                "gradients are taken with respect to float tensors (a model input, integer ones "
                "through a straight-through Cast, or the output of a DequantizeLinear node).",
                field="wrt")
    reached = set(wrt)
    for node in graph.node:
        live = {types.get(node.input[i], (0, None))[0] for i in differentiable_inputs(node)
                if node.input[i] in reached}
        if live:
            for out in node.output:
                elem = types.get(out, (0, None))[0]
                if out and (not elem or elem in FLOAT_TYPES or elem in live
                            or node.op_type in STRAIGHT_THROUGH or out in through):
                    reached.add(out)
    upstream = {start}
    for node in reversed(graph.node):
        if any(o in upstream for o in node.output):
            upstream.update(node.input[i] for i in differentiable_inputs(node))
    needs = reached & upstream
    nodes = [n for n in graph.node if any(o in needs for o in n.output)
             and any(n.input[i] in needs for i in differentiable_inputs(n))]
    return Path(nodes, needs)
