"""Seeds computed inside a gradient model, so the default target costs one run, not two.

The default target is each image's top-1 class. Choosing it on the host needs a forward pass
before the backward one; computing the one-hot seed in the graph (ArgMax -> OneHot) lets a
single forward+backward run serve Grad-CAM and saliency.
"""

from __future__ import annotations

import dataclasses

import onnx
from onnx import TensorProto, helper

from inspector import errors
from inspector.graph.autodiff import GradientModel


def seed_from_top1(gm: GradientModel, start: str) -> GradientModel:
    """`gm` with its seed input replaced by one_hot(argmax(start, axis=-1)); start must be [N, K]."""
    model = onnx.ModelProto()
    model.CopyFrom(gm.model)
    graph = model.graph
    seeds = [i for i in graph.input if i.name == gm.seed_input]
    if not seeds:
        raise errors.InvalidArgument(f"the gradient model has no seed input {gm.seed_input!r}")
    dims = seeds[0].type.tensor_type.shape.dim
    if len(dims) != 2:
        raise errors.InvalidArgument(f"a top-1 seed needs a [N, K] start tensor; {start!r} has rank {len(dims)}",
                                     field="target")
    graph.input.remove(seeds[0])
    producer = next((i for i, n in enumerate(graph.node) if start in n.output), None)
    if producer is None:
        raise errors.InvalidArgument(f"{start!r} is not computed by the gradient model", field="target")
    p = f"{gm.seed_input}__top1"
    nodes = [
        helper.make_node("ArgMax", [start], [f"{p}_index"], axis=-1, keepdims=0, name=f"{p}_argmax"),
        helper.make_node("Shape", [start], [f"{p}_shape"], name=f"{p}_shape"),
        helper.make_node("Gather", [f"{p}_shape", f"{p}_last"], [f"{p}_depth"], axis=0, name=f"{p}_depth"),
        helper.make_node("OneHot", [f"{p}_index", f"{p}_depth", f"{p}_values"], [gm.seed_input], axis=-1,
                         name=f"{p}_onehot"),
    ]
    graph.initializer.extend([
        helper.make_tensor(f"{p}_last", TensorProto.INT64, [1], [-1]),
        # the seed input's own type (float32: the gradient model Casts it to the type of start)
        helper.make_tensor(f"{p}_values", seeds[0].type.tensor_type.elem_type, [2], [0.0, 1.0]),
    ])
    for offset, node in enumerate(nodes, start=producer + 1):
        graph.node.insert(offset, node)
    return dataclasses.replace(gm, model=model, gradient_outputs=dict(gm.gradient_outputs),
                               fetch_outputs=dict(gm.fetch_outputs))
