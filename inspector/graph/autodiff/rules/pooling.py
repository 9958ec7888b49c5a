"""Pooling: MaxPool routes through its Indices output; AveragePool is a transposed box filter."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..emitter import Emitter
from ..registry import attribute, rule
from .conv import adjoint_conv, window


def scatter_flat(em: Emitter, g: str, flat_index: str, x: str, offset: int = 0) -> str:
    """Zeros of x's size (+offset slots), with g added at flat_index (repeats accumulate)."""
    size = em.do("Reshape", em.do("Size", x), em.const([1]))
    if offset:
        size = em.do("Add", size, em.const([offset]))
    # onnxruntime's ScatterElements(add) has float and double kernels only: accumulate in float.
    wide = em.dtype(x) in (TensorProto.FLOAT, TensorProto.DOUBLE)
    zero = helper.make_tensor("zero", em.dtype(x) if wide else TensorProto.FLOAT, [1], [0])
    buffer = em.do("ConstantOfShape", size, value=zero)
    flat = em.const([-1])
    values = em.do("Reshape", g, flat)
    values = values if wide else em.do("Cast", values, to=TensorProto.FLOAT)
    summed = em.do("ScatterElements", buffer, em.do("Reshape", flat_index, flat), values, axis=0,
                   reduction="add")
    return summed if wide else em.cast_like(summed, x)


@rule("MaxPool")
def max_pool(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Each output's gradient goes to the input its Indices output (flat over N*C*H*W) names."""
    if attribute(node, "storage_order", 0) != 0:
        raise NotImplementedError("column-major MaxPool indices (storage_order=1)")
    if len(node.output) < 2:
        node.output.append(em.fresh(f"{node.output[0]}_indices"))
    elif not node.output[1]:
        node.output[1] = em.fresh(f"{node.output[0]}_indices")
    x = node.input[0]
    return [em.reshape_like(scatter_flat(em, grads[0], node.output[1], x), x)]


@rule("AveragePool")
def average_pool(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """g / divisor spread over each window; the divisor map counts what each window averaged."""
    x, g = node.input[0], grads[0]
    kernel, strides, dilations = window(node, em)
    n = len(kernel)
    if attribute(node, "auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
        raise NotImplementedError("AveragePool with auto_pad SAME")
    pads = list(attribute(node, "pads", [0] * 2 * n))
    if attribute(node, "auto_pad", "NOTSET") == "VALID":
        pads = [0] * 2 * n
    extra = [s - 1 for s in strides] if attribute(node, "ceil_mode", 0) else [0] * n
    np_type = helper.tensor_dtype_to_np_dtype(em.dtype(x))
    box = em.const(np.ones([1, 1, *kernel]), dtype=np_type)
    spatial = em.shape(x, start=2)
    ones = em.do("Expand", em.scalar(1.0, x), em.do("Concat", em.const([1, 1]), spatial, axis=0))
    if attribute(node, "count_include_pad", 0):
        base = em.do("Pad", ones, em.const([0, 0, *pads[:n], 0, 0, *pads[n:]]), em.scalar(1.0, x))
        conv_pads = [0] * n + extra
    else:
        base, conv_pads = ones, pads[:n] + [p + e for p, e in zip(pads[n:], extra, strict=True)]
    counts = em.do("Conv", base, box, strides=strides, dilations=dilations, pads=conv_pads)
    counts = em.do("Slice", counts, em.const([0] * n), em.shape(g, start=2),
                   em.const(list(range(2, 2 + n))))
    per_channel = em.do("Reshape", em.do("Div", g, counts),
                        em.do("Concat", em.const([-1, 1]), em.shape(g, start=2), axis=0))
    gx = adjoint_conv(em, per_channel, box, spatial, em.const(pads[:n]), strides, dilations)
    return [em.reshape_like(gx, x)]


@rule("GlobalAveragePool")
def global_average_pool(node: onnx.NodeProto, grads: list[str | None],
                        em: Emitter) -> list[str | None]:
    x = node.input[0]
    count = em.do("ReduceProd", em.cast_like(em.shape(x, start=2), x), keepdims=0)
    return [em.do("Expand", em.do("Div", grads[0], count), em.shape(x))]


@rule("GlobalMaxPool")
def global_max_pool(node: onnx.NodeProto, grads: list[str | None],
                    em: Emitter) -> list[str | None]:
    """Split among the positions equal to the maximum (ties share the gradient)."""
    x, y = node.input[0], node.output[0]
    rank = em.rank(x)
    if rank is None:
        raise NotImplementedError("GlobalMaxPool needs the input rank")
    mask = em.do("Equal", x, y)
    count = em.reduce_sum(em.cast_like(mask, x), list(range(2, rank)))
    return [em.where(mask, em.do("Div", grads[0], count), x)]
