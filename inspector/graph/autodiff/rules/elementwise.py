"""Arithmetic ops with numpy broadcasting: the gradient is summed back to each operand's shape."""

from __future__ import annotations

import math

import onnx

from ..emitter import Emitter
from ..registry import rule


@rule("Add", "Sub", "Mul", "Div", inputs=(0, 1))
def binary(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """d(a op b): each operand's partial, un-broadcast to its shape."""
    g, (a, b), y = grads[0], node.input, node.output[0]
    op = node.op_type
    ga = gb = None
    if em.needs(a):
        part = {"Mul": lambda: em.do("Mul", g, b), "Div": lambda: em.do("Div", g, b)}.get(
            op, lambda: g)()
        ga = em.unbroadcast(part, a, y)
    if em.needs(b):
        if op == "Add":
            part = g
        elif op == "Sub":
            part = em.do("Neg", g)
        elif op == "Mul":
            part = em.do("Mul", g, a)
        else:  # d(a/b)/db = -y/b
            part = em.do("Neg", em.do("Mul", g, em.do("Div", y, b)))
        gb = em.unbroadcast(part, b, y)
    return [ga, gb]


@rule("Sum", inputs=None)
def sum_(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    return [em.unbroadcast(grads[0], x, node.output[0]) if em.needs(x) else None
            for x in node.input]


@rule("Neg")
def neg(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    return [em.do("Neg", grads[0])]


@rule("Abs")
def abs_(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    return [em.do("Mul", grads[0], em.do("Sign", node.input[0]))]


@rule("Exp")
def exp(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    return [em.do("Mul", grads[0], node.output[0])]


@rule("Log")
def log(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    return [em.do("Div", grads[0], node.input[0])]


@rule("Sqrt")
def sqrt(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    y = node.output[0]
    return [em.do("Div", grads[0], em.do("Add", y, y))]


@rule("Reciprocal")
def reciprocal(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    y = node.output[0]
    return [em.do("Neg", em.do("Mul", grads[0], em.do("Mul", y, y)))]


@rule("Pow")
def pow_(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """d x^p / dx = p x^(p-1); the exponent is treated as a constant."""
    x, p = node.input
    p_like = em.cast_like(p, x)
    lower = em.do("Pow", x, em.do("Sub", p_like, em.scalar(1.0, x)))
    return [em.unbroadcast(em.do("Mul", grads[0], em.do("Mul", p_like, lower)), x,
                           node.output[0]), None]


@rule("Erf")
def erf(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    x = node.input[0]
    bell = em.do("Exp", em.do("Neg", em.do("Mul", x, x)))
    return [em.do("Mul", grads[0], em.do("Mul", bell, em.scalar(2 / math.sqrt(math.pi), x)))]


@rule("Identity", "Dropout")
def identity(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Dropout is the identity at inference; its mask output carries no gradient."""
    return [grads[0]]


@rule("Cast", "CastLike")
def cast(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    return [em.cast_like(grads[0], node.input[0])]


@rule("Where", inputs=(1, 2))
def where(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Gradient goes to the value chosen at each position; none to the condition."""
    cond, a, b = node.input
    g, y = grads[0], node.output[0]
    ga = em.unbroadcast(em.where(cond, g, y), a, y) if em.needs(a) else None
    gb = em.unbroadcast(em.do("Where", cond, em.scalar(0.0, y), g), b, y) if em.needs(b) else None
    return [None, ga, gb]


@rule("Max", "Min", inputs=None)
def extremum(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Each input gets g where it equals the result; ties share it equally."""
    y, g = node.output[0], grads[0]
    masks = [em.cast_like(em.do("Equal", x, y), y) for x in node.input]
    count = masks[0] if len(masks) == 1 else em.do("Sum", *masks)
    share = em.do("Div", g, count)
    return [em.unbroadcast(em.do("Mul", share, m), x, y) if em.needs(x) else None
            for x, m in zip(node.input, masks, strict=True)]


@rule("Mean", inputs=None)
def mean(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    y = node.output[0]
    share = em.do("Div", grads[0], em.scalar(float(len(node.input)), y))
    return [em.unbroadcast(share, x, y) if em.needs(x) else None for x in node.input]


@rule("Sin", "Cos")
def trigonometric(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    x, g = node.input[0], grads[0]
    if node.op_type == "Sin":
        return [em.do("Mul", g, em.do("Cos", x))]
    return [em.do("Neg", em.do("Mul", g, em.do("Sin", x)))]
