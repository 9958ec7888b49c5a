"""Ops that only pick or repeat elements (Slice, Gather, Tile, Pad): run the op on an index
tensor, then scatter-add the gradient back to the picked positions. Exact for any steps,
negative indices, repeats and pad modes, with no per-op index arithmetic.

GatherND (batch_dims 0) has its direct adjoint instead: ScatterND(reduction 'add') of the
gradient into zeros of data's shape, with the forward indices as they are (negative ones
included; repeated picks accumulate). With batch_dims > 0 it goes the index-tensor way.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from ..emitter import Emitter
from ..registry import attribute, rule
from .pooling import scatter_flat


def pick_adjoint(node: onnx.NodeProto, g: str, em: Emitter) -> str:
    """Gradient of x for y = node(x, ...) when every y element is a copy of an x element or a
    constant: positions are numbered from 1, slot 0 collects the constant (padding) entries."""
    x = node.input[0]
    one = em.const(1)
    count = em.do("Size", x)
    numbers = em.do("Range", one, em.do("Add", count, one), one)
    index = em.do("Reshape", numbers, em.shape(x))
    inputs = [index, *node.input[1:]]
    if node.op_type == "Pad" and len(inputs) > 2 and inputs[2]:
        inputs[2] = em.const(0)
    picked = em.fresh("picked")
    em.nodes.append(helper.make_node(node.op_type, inputs, [picked], name=em.fresh("pick"),
                                     domain=node.domain))
    em.nodes[-1].attribute.extend(a for a in node.attribute if a.name != "value")
    summed = scatter_flat(em, g, picked, x, offset=1)
    tail = em.do("Slice", summed, em.const([1]), em.const([2**62]), em.const([0]))
    return em.reshape_like(tail, x)


@rule("Slice", "Gather", "GatherElements", "Tile", "Pad")
def pick(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    return [pick_adjoint(node, grads[0], em)]


@rule("GatherND")
def gather_nd(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """data's gradient: g scatter-added at `indices` into zeros shaped like data."""
    data, indices, g = node.input[0], node.input[1], grads[0]
    if attribute(node, "batch_dims", 0):
        return [pick_adjoint(node, g, em)]
    # onnxruntime's ScatterND(add) has float and double kernels only: accumulate in float.
    elem = em.grad_dtype(data)
    wide = elem in (TensorProto.FLOAT, TensorProto.DOUBLE)
    zero = helper.make_tensor("zero", elem if wide else TensorProto.FLOAT, [1], [0])
    zeros = em.do("ConstantOfShape", em.shape(data), value=zero)
    values = g if wide else em.do("Cast", g, to=TensorProto.FLOAT)
    summed = em.do("ScatterND", zeros, indices, values, reduction="add")
    return [summed if wide else em.do("Cast", summed, to=elem)]
