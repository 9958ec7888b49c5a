"""Quantized ops, by the straight-through estimator (STE): rounding counts as the identity.

The gradient of an integer tensor q is d/dq, q read as a real number (a float tensor in the
backward graph). With deq = (q - zero_point) * scale that is scale * d/d(deq), so
QuantizeLinear divides by its scale, DequantizeLinear multiplies by it, and a
QuantizeLinear -> DequantizeLinear pair passes the gradient unchanged. Saturation is not
rounding: where QuantizeLinear (or a QLinear kernel's output) clips to its type's range the
gradient is zero, which is also how a Relu fused into the output range acts.

A quantized kernel (QLinearConv, ConvInteger, QLinearMatMul, QGemm, ...) is differentiated as
the float op on dequantized operands: its weights are dequantized (at build time when fixed),
and the float op's own rule from conv.py, matmul.py, pooling.py, ... runs on a stand-in node.
QuantizeLinear / DequantizeLinear are registered here too (replacing the plain pass-through in
elementwise.py, which is imported first so the order of rules/__init__.py does not matter).
A Relu that quantization fused into an output range is only that clip: the gradient policies
(guided backprop, deconvnet) act on the Relu nodes still in the graph.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..assemble import subgraph_inputs
from ..emitter import Emitter
from ..registry import RULES, VJP, attribute, rule

# The float rules used on stand-in nodes; elementwise must register before the Q/DQ rules here.
from . import activations, conv, elementwise, matmul, pooling, shape_ops  # noqa: F401

INT_RANGES = {
    TensorProto.UINT8: (0, 255), TensorProto.INT8: (-128, 127),
    TensorProto.UINT16: (0, 65535), TensorProto.INT16: (-32768, 32767),
}


def _input(node: onnx.NodeProto, i: int) -> str:
    return node.input[i] if i < len(node.input) else ""


def _axis_shape(axis: int, rank: int) -> list[int]:
    shape = [1] * rank
    shape[axis % rank] = -1
    return shape


def _param(em: Emitter, name: str, rank: int | None = None, axis: int | None = None) -> str:
    """A scale or zero point as float, shaped to broadcast against a rank-`rank` tensor along
    `axis` when it holds one value per slice (scalars and size-1 tensors stay as they are)."""
    key = ("quant_param", name, rank, axis)
    if key in em.derived:
        return em.derived[key]
    value = em.constant(name)
    if value is not None:
        value = value.astype(np.float32)
        if value.size > 1 and rank is not None and axis is not None:
            value = value.reshape(_axis_shape(axis, rank))
        em.derived[key] = em.const(value, dtype=np.float32)
        return em.derived[key]
    dims = em.dims(name)
    out = em.do("Cast", name, to=TensorProto.FLOAT)
    if rank is not None and axis is not None and (dims is None or len(dims) == 1 and dims[0] != 1):
        out = em.do("Reshape", out, em.const(_axis_shape(axis, rank)))
    em.derived[key] = out
    return out


def _register(em: Emitter, name: str, dims, like: str = "") -> str:
    """Give a backward tensor a float type and dims; it needs a gradient where `like` does."""
    em.types[name] = (TensorProto.FLOAT, None if dims is None else list(dims))
    if like and em.needs(like):
        em.needs_grad.add(name)
    return name


def _real(em: Emitter, q: str, scale: str, zero: str, axis: int = 1) -> str:
    """(q - zero) * scale as a float tensor (scale "" means 1, zero "" means 0): a constant
    computed at build time when q, scale and zero are fixed, otherwise computed at run time."""
    key = ("dequantized", q, scale, zero, axis)
    if key in em.derived:
        return em.derived[key]
    dims = em.dims(q)
    rank = None if dims is None else len(dims)
    fixed = [em.constant(t) if t else np.zeros((), np.float32) for t in (q, zero)]
    s_value = em.constant(scale) if scale else np.ones((), np.float32)
    if all(v is not None for v in (*fixed, s_value)):
        value, zp = fixed[0].astype(np.float32), fixed[1].astype(np.float32)
        s_value = s_value.astype(np.float32)
        if value.ndim:
            zp = zp.reshape(_axis_shape(axis, value.ndim)) if zp.size > 1 else zp
            s_value = s_value.reshape(_axis_shape(axis, value.ndim)) if s_value.size > 1 else s_value
        name = em.const(((value - zp) * s_value).astype(np.float32), dtype=np.float32)
        em.constants[name] = em.initializers[-1]
        dims = list(value.shape)
    else:
        name = em.do("Cast", q, to=TensorProto.FLOAT)
        if zero:
            name = em.do("Sub", name, _param(em, zero, rank, axis))
        if scale:
            name = em.do("Mul", name, _param(em, scale, rank, axis))
    em.derived[key] = _register(em, name, dims, like=q)
    return em.derived[key]


def _quantized_type(em: Emitter, y: str, zero: str) -> int:
    """The element type of quantized y: its own, else its zero point's, else uint8 (the
    QuantizeLinear default)."""
    return em.types.get(y, (0, None))[0] or (
        em.types.get(zero, (0, None))[0] if zero else TensorProto.UINT8)


def _unsaturated(em: Emitter, g: str, y: str, zero: str) -> str:
    """g where the quantized y is strictly inside its type's range, else 0."""
    bounds = INT_RANGES.get(_quantized_type(em, y, zero))
    if bounds is None:
        return g
    level = em.do("Cast", y, to=TensorProto.FLOAT)
    inside = em.do("And", em.do("Greater", level, em.const(float(bounds[0]), dtype=np.float32)),
                   em.do("Less", level, em.const(float(bounds[1]), dtype=np.float32)))
    return em.do("Where", inside, g, em.const(0.0, dtype=np.float32))


def _output_grad(em: Emitter, g: str, y: str, y_scale: str, y_zero: str) -> str:
    """d/d(dequantized y) from d/dy: zero where y saturated, else divided by y's scale."""
    g = _unsaturated(em, g, y, y_zero)
    return em.do("Div", g, _param(em, y_scale)) if y_scale else g


def _input_grad(em: Emitter, g: str | None, x: str, scale: str, axis: int = 1) -> str | None:
    """d/dx from d/d(dequantized x): times x's scale (None stays None, as does a wrt not needed)."""
    if g is None or not em.needs(x):
        return None
    return em.do("Mul", g, _param(em, scale, em.rank(x), axis))


def _stand_in(op_type: str, node: onnx.NodeProto, inputs: Sequence[str], em: Emitter,
              drop: Sequence[str] = (), **attrs) -> onnx.NodeProto:
    """A float node with node's attributes (minus `drop`) on dequantized inputs."""
    fake = helper.make_node(op_type, list(inputs), [em.fresh(f"{node.output[0]}_float")],
                            name=node.name, **attrs)
    fake.attribute.extend(a for a in node.attribute if a.name not in drop and a.name not in attrs)
    return fake


def _float_rule(op_type: str, fake: onnx.NodeProto, g: str, em: Emitter) -> list[str | None]:
    return RULES[op_type].vjp(fake, [g], em)


def _tidy(vjp: VJP) -> VJP:
    """Drop what `vjp` emitted that its gradients do not use: dequantized operands the float
    rule only needed the shape of, or a weight the Conv rule flipped into its own copy."""

    @functools.wraps(vjp)
    def run(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
        nodes, inits = len(em.nodes), len(em.initializers)
        found = vjp(node, grads, em)
        needed = {g for g in found if g}
        kept = []
        for n in reversed(em.nodes[nodes:]):
            if any(o in needed for o in n.output):
                kept.append(n)
                needed.update(n.input)
                needed |= subgraph_inputs(n)
        removed = {o for n in em.nodes[nodes:] for o in n.output} - {o for n in kept for o in n.output}
        removed |= {t.name for t in em.initializers[inits:] if t.name not in needed}
        em.nodes[nodes:] = kept[::-1]
        em.initializers[inits:] = [t for t in em.initializers[inits:] if t.name in needed]
        for key in [k for k, v in em.derived.items() if v in removed]:
            del em.derived[key]  # a later rule makes its own
        return found

    return run


# --- quantizers -------------------------------------------------------------------------------


def _clip_bounds(em: Emitter, x: str, scale: str, zero: str, bounds: tuple[int, int],
                 axis: int) -> tuple[str, str]:
    """(lowest, highest) x QuantizeLinear does not clip: (bounds - zero) * scale, in x's type;
    computed at build time when scale and zero point are fixed."""
    rank = em.rank(x)
    s = em.constant(scale)
    z = em.constant(zero) if zero else np.zeros((), np.float32)
    if s is not None and z is not None:
        s, z = s.astype(np.float32), z.astype(np.float32)
        if rank and max(s.size, z.size) > 1:
            s, z = (v.reshape(_axis_shape(axis, rank)) if v.size > 1 else v for v in (s, z))
        np_type = helper.tensor_dtype_to_np_dtype(em.grad_dtype(x))
        low, high = ((b - z) * s for b in bounds)
        return em.const(low, dtype=np_type), em.const(high, dtype=np_type)
    levels = [em.const(float(b), dtype=np.float32) for b in bounds]
    if zero:
        levels = [em.do("Sub", v, _param(em, zero, rank, axis)) for v in levels]
    s_name = _param(em, scale, rank, axis)
    low, high = (em.cast_like(em.do("Mul", v, s_name), x) for v in levels)
    return low, high


@rule("QuantizeLinear")
@_tidy
def quantize_linear(node: onnx.NodeProto, grads: list[str | None],
                    em: Emitter) -> list[str | None]:
    """y = saturate(round(x / scale) + zero_point): d/dx = d/dy / scale inside the range, else 0."""
    if attribute(node, "block_size", 0):
        raise NotImplementedError("blocked quantization (block_size)")
    x, y, scale, zero = node.input[0], node.output[0], node.input[1], _input(node, 2)
    rank, axis = em.rank(x), attribute(node, "axis", 1)
    g = em.do("Div", grads[0], _param(em, scale, rank, axis))
    bounds = INT_RANGES.get(_quantized_type(em, y, zero))
    if bounds is not None:  # x within the clip bounds (bounds - zero) * scale, both included
        low, high = _clip_bounds(em, x, scale, zero, bounds, axis)
        inside = em.do("And", em.do("GreaterOrEqual", x, low), em.do("LessOrEqual", x, high))
        g = em.do("Where", inside, g, em.const(0.0, dtype=np.float32))
    return [em.cast_like(g, x)]


@rule("DequantizeLinear")
@_tidy
def dequantize_linear(node: onnx.NodeProto, grads: list[str | None],
                      em: Emitter) -> list[str | None]:
    """y = (x - zero_point) * scale: d/dx = d/dy * scale."""
    if attribute(node, "block_size", 0):
        raise NotImplementedError("blocked quantization (block_size)")
    x = node.input[0]
    return [em.do("Mul", grads[0], _param(em, node.input[1], em.rank(x),
                                          attribute(node, "axis", 1)))]


@rule("DynamicQuantizeLinear")
@_tidy
def dynamic_quantize_linear(node: onnx.NodeProto, grads: list[str | None],
                            em: Emitter) -> list[str | None]:
    """y = round(x / scale) + zero_point with the range covering x: d/dx = d/dy / scale.

    The scale and zero point count as constants (the STE); gradients reaching them are dropped.
    """
    if grads[0] is None:
        return [None]
    return [em.do("Div", grads[0], node.output[1])]


# --- convolutions and products -----------------------------------------------------------------

@rule("QLinearConv")
@_tidy
def qlinear_conv(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Conv on dequantized x and w (w per output channel along axis 0); bias needs no gradient."""
    x, xs, xz, w, ws, wz, ys, yz = (_input(node, i) for i in range(8))
    g = _output_grad(em, grads[0], node.output[0], ys, yz)
    fake = _stand_in("Conv", node, [_real(em, x, xs, xz), _real(em, w, ws, wz, axis=0)], em)
    return [_input_grad(em, _float_rule("Conv", fake, g, em)[0], x, xs)]


@rule("ConvInteger")
@_tidy
def conv_integer(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """y = conv(x - x_zero, w - w_zero) exactly, in integers: the Conv rule with w - w_zero."""
    x, w, xz, wz = (_input(node, i) for i in range(4))
    fake = _stand_in("Conv", node, [_real(em, x, "", xz), _real(em, w, "", wz, axis=0)], em)
    return [_float_rule("Conv", fake, grads[0], em)[0]]


def _product(op: str, node: onnx.NodeProto, g: str, em: Emitter,
             a: tuple[str, str, str, int], b: tuple[str, str, str, int]) -> list[str | None]:
    """(grad a, grad b) of a MatMul/Gemm on dequantized operands, each times its own scale."""
    a_real, b_real = _real(em, *a), _real(em, *b)
    fixed = em.constant(b_real)
    if op == "MatMul" and not em.needs(b[0]) and fixed is not None and fixed.ndim == 2:
        # the usual weight: g @ b^T whatever a's rank (often unknown after contrib ops)
        key = ("transposed", b_real)
        if key not in em.derived:
            em.derived[key] = em.const(np.ascontiguousarray(fixed.T), dtype=np.float32)
        return [_scaled(em, em.do("MatMul", g, em.derived[key]), a), None]
    fake = _stand_in(op, node, [a_real, b_real], em)
    ga, gb = _float_rule(op, fake, g, em)[:2]
    return [_scaled(em, ga, a), _scaled(em, gb, b)]


def _scaled(em: Emitter, g: str | None, operand: tuple[str, str, str, int]) -> str | None:
    q, scale, _, axis = operand
    if g is None or not em.needs(q):
        return None
    return em.do("Mul", g, _param(em, scale, em.rank(q), axis)) if scale else g


@rule("MatMulInteger", inputs=(0, 1))
@_tidy
def matmul_integer(node: onnx.NodeProto, grads: list[str | None],
                   em: Emitter) -> list[str | None]:
    """y = (a - a_zero) @ (b - b_zero): a_zero is per row of a, b_zero per column of b."""
    a, b, az, bz = (_input(node, i) for i in range(4))
    return _product("MatMul", node, grads[0], em, (a, "", az, -2), (b, "", bz, -1))


@rule("QLinearMatMul", inputs=(0, 3))
@_tidy
def qlinear_matmul(node: onnx.NodeProto, grads: list[str | None],
                   em: Emitter) -> list[str | None]:
    a, as_, az, b, bs, bz, ys, yz = (_input(node, i) for i in range(8))
    g = _output_grad(em, grads[0], node.output[0], ys, yz)
    ga, gb = _product("MatMul", node, g, em, (a, as_, az, -2), (b, bs, bz, -1))
    return [ga, None, None, gb]


@rule("QGemm", inputs=(0, 3))
@_tidy
def qgemm(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """com.microsoft QGemm: alpha * A' B' + C; a float output when y_scale is omitted."""
    a, as_, az, b, bs, bz, _, ys, yz = (_input(node, i) for i in range(9))
    g = _output_grad(em, grads[0], node.output[0], ys, yz) if ys else grads[0]
    trans_b = attribute(node, "transB", 0)
    ga, gb = _product("Gemm", node, g, em, (a, as_, az, 1 if attribute(node, "transA", 0) else 0),
                      (b, bs, bz, 0 if trans_b else 1))
    return [ga, None, None, gb]


# --- pointwise, pooling, concatenation (com.microsoft) -----------------------------------------


@rule("QLinearAdd", "QLinearMul", inputs=(0, 3))
@_tidy
def qlinear_binary(node: onnx.NodeProto, grads: list[str | None],
                   em: Emitter) -> list[str | None]:
    a, as_, az, b, bs, bz, ys, yz = (_input(node, i) for i in range(8))
    g = _output_grad(em, grads[0], node.output[0], ys, yz)
    y = node.output[0]
    ga = gb = None
    if em.needs(a):
        part = g if node.op_type == "QLinearAdd" else em.do("Mul", g, _real(em, b, bs, bz))
        ga = _input_grad(em, em.unbroadcast(part, a, y), a, as_)
    if em.needs(b):
        part = g if node.op_type == "QLinearAdd" else em.do("Mul", g, _real(em, a, as_, az))
        gb = _input_grad(em, em.unbroadcast(part, b, y), b, bs)
    return [ga, None, None, gb]


UNARY = {"QLinearGlobalAveragePool": "GlobalAveragePool", "QLinearAveragePool": "AveragePool",
         "QLinearSigmoid": "Sigmoid", "QLinearLeakyRelu": "LeakyRelu"}


@rule(*UNARY)
@_tidy
def qlinear_unary(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """(X, x_scale, x_zero, Y_scale, Y_zero): the float op's rule on dequantized X."""
    if attribute(node, "channels_last", 0):
        raise NotImplementedError("channels_last layout")
    x, xs, xz, ys, yz = (_input(node, i) for i in range(5))
    g = _output_grad(em, grads[0], node.output[0], ys, yz)
    fake = _stand_in(UNARY[node.op_type], node, [_real(em, x, xs, xz)], em,
                     drop=("channels_last",))
    return [_input_grad(em, _float_rule(UNARY[node.op_type], fake, g, em)[0], x, xs)]


@rule("QLinearSoftmax")
@_tidy
def qlinear_softmax(node: onnx.NodeProto, grads: list[str | None],
                    em: Emitter) -> list[str | None]:
    """com.microsoft QLinearSoftmax (X, x_scale, x_zero, y_scale, y_zero; axis, opset): the
    Softmax rule at dequantized X. No saturation mask: probabilities never leave [0, 1]."""
    x, xs, xz, ys, _ = (_input(node, i) for i in range(5))
    opset = attribute(node, "opset", 13)
    axis = attribute(node, "axis", -1 if opset >= 13 else 1)
    x_real = _real(em, x, xs, xz)
    g = em.do("Div", grads[0], _param(em, ys))
    if opset < 13:  # the old Softmax: over everything from `axis` on, as a [rows, columns] matrix
        x_real = _register(em, em.do("Flatten", x_real, axis=axis), [None, None])
        g, axis = em.do("Reshape", g, em.shape(x_real)), 1
    fake = _stand_in("Softmax", node, [x_real], em, drop=("opset",), axis=axis)
    fake.output[0] = _register(em, em.do("Softmax", x_real, axis=axis), em.dims(x_real))
    gx = _float_rule("Softmax", fake, g, em)[0]
    return [_input_grad(em, gx if opset >= 13 else em.reshape_like(gx, x), x, xs)]


@rule("QLinearConcat", inputs=None)
@_tidy
def qlinear_concat(node: onnx.NodeProto, grads: list[str | None],
                   em: Emitter) -> list[str | None]:
    """(Y_scale, Y_zero, X0, x0_scale, x0_zero, X1, ...): split d/d(dequantized Y) back."""
    ys, yz = node.input[0], node.input[1]
    triples = [tuple(node.input[i:i + 3]) for i in range(2, len(node.input), 3)]
    g = _output_grad(em, grads[0], node.output[0], ys, yz)
    reals = [_real(em, x, s, z) for x, s, z in triples]
    axis = attribute(node, "axis", 0)
    if axis < 0:
        rank = em.rank(reals[0])
        if rank is None:
            raise NotImplementedError("a negative axis needs a known rank")
        axis += rank
    fake = _stand_in("Concat", node, reals, em, drop=("axis",), axis=axis)
    parts = _float_rule("Concat", fake, g, em)
    out: list[str | None] = [None, None]
    for (x, s, _), part in zip(triples, parts, strict=True):
        out += [_input_grad(em, part, x, s), None, None]
    return out


# --- recurrent (com.microsoft) -----------------------------------------------------------------

LSTM_ATTRS = ("activation_alpha", "activation_beta", "activations", "clip", "direction",
              "hidden_size", "input_forget")


def _lstm_weight(em: Emitter, q: str, scale: str, zero: str) -> str:
    """W [D, I, 4H] (or R [D, H, 4H]) dequantized with per-direction or per-column scales and
    transposed to the LSTM layout [D, 4H, I]; fixed weights only."""
    value, s = em.constant(q), em.constant(scale)
    zp = em.constant(zero) if zero else np.zeros((), np.int32)
    if value is None or s is None or zp is None:
        raise NotImplementedError("DynamicQuantizeLSTM weights that are not constants")
    shape = (value.shape[0], 1, -1)
    real = (value.astype(np.float32) - zp.astype(np.float32).reshape(shape)) * s.astype(
        np.float32).reshape(shape)
    name = em.const(np.ascontiguousarray(real.transpose(0, 2, 1)), dtype=np.float32)
    em.constants[name] = em.initializers[-1]
    return _register(em, name, real.transpose(0, 2, 1).shape)


@rule("DynamicQuantizeLSTM", inputs=(0, 5, 6))
@_tidy
def dynamic_quantize_lstm(node: onnx.NodeProto, grads: list[str | None],
                          em: Emitter) -> list[str | None]:
    """com.microsoft DynamicQuantizeLSTM (X, W, R, B, sequence_lens, initial_h, initial_c, P,
    W_scale, W_zero_point, R_scale, R_zero_point): the LSTM rule on dequantized W and R."""
    if "LSTM" not in RULES:
        raise NotImplementedError("there is no LSTM gradient rule")
    x, w, r, *rest = (_input(node, i) for i in range(8))
    w_real = _lstm_weight(em, w, _input(node, 8), _input(node, 9))
    r_real = _lstm_weight(em, r, _input(node, 10), _input(node, 11))
    inputs = [x, w_real, r_real, *rest]
    while inputs and not inputs[-1]:
        inputs.pop()
    fake = helper.make_node("LSTM", inputs, list(node.output), name=node.name)
    fake.attribute.extend(a for a in node.attribute if a.name in LSTM_ATTRS)
    found = RULES["LSTM"].vjp(fake, grads, em)
    return [*found, *[None] * (12 - len(found))][:12]
