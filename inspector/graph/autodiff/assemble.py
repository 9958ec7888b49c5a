"""Assemble forward + backward nodes into one runnable model, pruning what nothing needs."""

from __future__ import annotations

from collections.abc import Iterable

import onnx
from onnx import helper

from .emitter import Emitter


def subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Outer-scope names used inside If/Loop/Scan bodies."""
    names: set[str] = set()
    for attr in node.attribute:
        graphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for g in graphs:
            for inner in g.node:
                names.update(inner.input)
                names |= subgraph_inputs(inner)
    return names


def prune_forward(nodes: list[onnx.NodeProto], needed: set[str]) -> list[onnx.NodeProto]:
    """Forward nodes that produce something in `needed` (transitively), in their order."""
    keep = []
    needed = set(needed)
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
            needed |= subgraph_inputs(node)
    return keep[::-1]


def assemble(model: onnx.ModelProto, em: Emitter, seed: onnx.ValueInfoProto,
             outputs: Iterable[tuple[str, str, str]]) -> onnx.ModelProto:
    """The model whose graph runs the needed forward nodes, then `em`'s backward nodes.

    `outputs` holds (source tensor, graph output name, tensor whose type it has); each
    becomes an Identity node.
    """
    graph = model.graph
    outputs = list(outputs)
    tail = [helper.make_node("Identity", [src], [dst], name=em.fresh(f"{dst}_out"))
            for src, dst, _ in outputs]
    backward = em.nodes + tail
    needed = {i for n in backward for i in n.input} | {
        i for n in backward for i in subgraph_inputs(n)}
    forward = prune_forward(list(graph.node), needed)
    used = {i for n in forward + backward for i in n.input} | {
        i for n in forward + backward for i in subgraph_inputs(n)}
    inits = [t for t in graph.initializer if t.name in used] + em.initializers
    init_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names] + [seed]
    produced = {o for n in forward for o in n.output}
    value_info = [v for v in graph.value_info if v.name in produced]
    out_infos = [helper.make_tensor_value_info(dst, em.dtype(like), em.dims(like))
                 for _, dst, like in outputs]
    new_graph = helper.make_graph(forward + backward, f"{graph.name}_gradient", inputs,
                                  out_infos, inits, value_info=value_info)
    result = onnx.ModelProto()
    result.CopyFrom(model)
    result.graph.CopyFrom(new_graph)
    return result
