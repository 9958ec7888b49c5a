"""Weights and biases of Conv / ConvTranspose / Gemm / MatMul layers as float32 arrays.

Exporters often hide a weight behind Identity, Cast or DequantizeLinear nodes, or store it in a
Constant node; the array returned is the value the layer actually consumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx

from inspector import errors
from inspector.graph.constants import Constants
from inspector.graph.info import WEIGHT_OPS, node_names, weight_inputs
from inspector.graph.select import unknown_selectors_message


@dataclass(frozen=True)
class WeightRef:
    """One weight or bias tensor of a layer, by the initializer (or Constant) it comes from."""

    initializer: str
    node: str
    op_type: str
    role: Literal["weight", "bias"]
    array: np.ndarray = field(repr=False, compare=False)


def find_weights(model: onnx.ModelProto, selectors: Sequence[str] | None = None) -> list[WeightRef]:
    """Weights (then biases) of every weighted layer, or of the layers the selectors name.

    A selector is a node name or one of the node's output tensor names.
    """
    graph = model.graph
    consts = Constants(graph)
    names = node_names(model)
    wanted: set[int] | None = None
    if selectors:
        index = {n: i for i, n in enumerate(names)}
        index.update({o: i for i, node in enumerate(graph.node) for o in node.output if o})
        unknown = [s for s in selectors if s not in index]
        if unknown:
            raise errors.InvalidArgument(unknown_selectors_message(
                unknown, list(index), "node or node output"), field="layers")
        wanted = {index[s] for s in selectors}
        bare = [names[i] for i in sorted(wanted) if not weight_inputs(graph.node[i], consts)]
        if bare:
            raise errors.InvalidArgument(
                f"layer {', '.join(map(repr, bare))} has no constant weights; weights exist for "
                f"{'/'.join(sorted(WEIGHT_OPS))} layers whose weight is an initializer or Constant",
                field="layers")
    refs: list[WeightRef] = []
    for i, node in enumerate(graph.node):
        if wanted is not None and i not in wanted:
            continue
        for role, tensor in zip(("weight", "bias"), weight_inputs(node, consts), strict=False):
            refs.append(WeightRef(
                initializer=consts.root(tensor) or tensor, node=names[i], op_type=node.op_type,
                role=role, array=np.asarray(consts.value(tensor), dtype=np.float32)))
    return refs
