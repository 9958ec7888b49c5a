"""Integer model inputs (images fed as uint8/int8) differentiated through a straight-through Cast.

A gradient needs a float tensor to flow into. When a `wrt` tensor is an integer graph input, the
gradient model takes that input as float32 instead and Casts it to the model's integer type
right away; the Cast counts as the identity backward (straight-through), so the gradient is the
one of the float value of the input. The runtime feeds the integer values (rounded and clipped
to the integer type) as float32, so the forward values are exactly the integer model's.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import TensorProto, helper

# Image-like integer types (exact in float32). int32/int64 inputs (token ids, indices) stay
# refused by paths.find_path: a gradient with respect to an index means nothing.
INTEGER_INPUTS = frozenset({TensorProto.UINT8, TensorProto.INT8, TensorProto.UINT16, TensorProto.INT16})


def integer_inputs(model: onnx.ModelProto, wrt: Sequence[str]) -> list[str]:
    """The `wrt` names that are graph inputs (not initializers) of an integer element type."""
    inits = {t.name for t in model.graph.initializer}
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input if i.name not in inits}
    return [w for w in wrt if types.get(w) in INTEGER_INPUTS]


def float_inputs(model: onnx.ModelProto, names: Sequence[str]) -> tuple[onnx.ModelProto, set[str]]:
    """A copy of `model` whose inputs `names` are float32, each Cast to its integer type at once.

    Returns the copy and the Cast outputs: the tensors a gradient passes straight through.
    """
    if not names:
        return model, set()
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    taken = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {
        o for n in graph.node for o in n.output}
    through: set[str] = set()
    casts = []
    for inp in graph.input:
        if inp.name not in names:
            continue
        elem = inp.type.tensor_type.elem_type
        cast = f"{inp.name}__as_{TensorProto.DataType.Name(elem).lower()}"
        while cast in taken:
            cast += "_"
        taken.add(cast)
        _rename_uses(graph, inp.name, cast)
        shape = inp.type.tensor_type.shape if inp.type.tensor_type.HasField("shape") else None
        dims = None if shape is None else [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]
        graph.value_info.append(helper.make_tensor_value_info(cast, elem, dims))
        casts.append(helper.make_node("Cast", [inp.name], [cast], to=elem,
                                      name=f"{cast}__straight_through"))
        inp.type.tensor_type.elem_type = TensorProto.FLOAT
        through.add(cast)
    for offset, node in enumerate(casts):
        graph.node.insert(offset, node)
    return copy, through


def _rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Point every use of `old` (in nodes and nested subgraphs) at `new`."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            for sub in [*attr.graphs, *([attr.g] if attr.HasField("g") else [])]:
                if old not in {i.name for i in sub.input}:  # not shadowed by the body's own input
                    _rename_uses(sub, old, new)
