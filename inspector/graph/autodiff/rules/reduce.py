"""Reductions: broadcast the gradient back over the reduced axes (Max/Min: to the argmax)."""

from __future__ import annotations

import onnx

from ..emitter import Emitter
from ..registry import attribute, rule


def _axes(node: onnx.NodeProto, em: Emitter) -> str | None:
    """The reduced axes as an int64 tensor, or None for all axes."""
    if len(node.input) > 1 and node.input[1]:
        return node.input[1]
    axes = attribute(node, "axes")
    return em.const(list(axes)) if axes else None


@rule("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL2",
      "ReduceLogSumExp")
def reduce(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    x, y, g = node.input[0], node.output[0], grads[0]
    axes = _axes(node, em)
    if axes is None and attribute(node, "noop_with_empty_axes", 0):
        return [g]
    if not attribute(node, "keepdims", 1) and axes is not None:
        g, y = em.do("Unsqueeze", g, axes), em.do("Unsqueeze", y, axes)
    op = node.op_type
    if op == "ReduceMean":
        ratio = em.do("Div", em.do("Size", x), em.do("Size", node.output[0]))
        g = em.do("Div", g, em.cast_like(ratio, x))
    if op in ("ReduceMax", "ReduceMin"):
        mask = em.do("Equal", x, y)
        count = em.cast_like(mask, x)
        count = em.do("ReduceSum", count, axes, keepdims=1) if axes else em.do(
            "ReduceSum", count, keepdims=1)
        return [em.where(mask, em.do("Div", g, count), x)]
    spread = em.do("Expand", g, em.shape(x))
    if op == "ReduceSumSquare":
        spread = em.do("Mul", spread, em.do("Add", x, x))
    elif op == "ReduceL2":  # d|x|/dx = x/|x|
        spread = em.do("Mul", spread, em.do("Div", x, y))
    elif op == "ReduceLogSumExp":  # softmax over the reduced axes
        spread = em.do("Mul", spread, em.do("Exp", em.do("Sub", x, y)))
    return [spread]
