"""ScatterElements and ScatterND: the written positions take their gradient from the matching
gather of g; the data keeps g everywhere else (reduction 'none' zeroes the overwritten
positions, 'add' keeps them). Indices may be negative: the Gather/Scatter ops read them alike."""

from __future__ import annotations

import onnx

from ..emitter import Emitter
from ..registry import attribute, rule

GATHER = {"ScatterElements": "GatherElements", "ScatterND": "GatherND"}


@rule("ScatterElements", "ScatterND", inputs=(0, 2))
def scatter(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    data, indices, updates = node.input[0], node.input[1], node.input[2]
    g = grads[0]
    reduction = attribute(node, "reduction", "none")
    if reduction not in ("none", "add"):
        raise NotImplementedError(f"{node.op_type} with reduction '{reduction}' (only 'none' and "
                                  "'add' have a gradient rule)")
    axis = {"axis": attribute(node, "axis", 0)} if node.op_type == "ScatterElements" else {}
    g_data = g_updates = None
    if em.needs(data):
        g_data = g if reduction == "add" else em.do(
            node.op_type, g, indices, em.zeros_like(updates), **axis)
    if em.needs(updates):
        g_updates = em.do(GATHER[node.op_type], g, indices, **axis)
    return [g_data, None, g_updates]
