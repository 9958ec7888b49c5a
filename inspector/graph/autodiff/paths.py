"""Which part of a graph is differentiated: tensors on a path from a `wrt` tensor to `start`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from ...errors import InvalidArgument
from .registry import differentiable_inputs

FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
# Straight-through ops: their integer outputs still carry a gradient.
STRAIGHT_THROUGH = {"QuantizeLinear", "DynamicQuantizeLinear"}


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
              types: dict[str, tuple[int, object]]) -> Path:
    """Nodes between `wrt` and `start` through differentiable float inputs."""
    reached = set(wrt)
    for node in graph.node:
        if any(node.input[i] in reached for i in differentiable_inputs(node)):
            for out in node.output:
                elem = types.get(out, (0, None))[0]
                if out and (not elem or elem in FLOAT_TYPES or node.op_type in STRAIGHT_THROUGH):
                    reached.add(out)
    upstream = {start}
    for node in reversed(graph.node):
        if any(o in upstream for o in node.output):
            upstream.update(node.input[i] for i in differentiable_inputs(node))
    needs = reached & upstream
    nodes = [n for n in graph.node if any(o in needs for o in n.output)
             and any(n.input[i] in needs for i in differentiable_inputs(n))]
    return Path(nodes, needs)
