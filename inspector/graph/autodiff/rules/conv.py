"""Conv and ConvTranspose: each one's input gradient is the other with the same weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from ..emitter import Emitter
from ..registry import attribute, rule


def window(node: onnx.NodeProto, em: Emitter, w: str | None = None) -> tuple[list[int], ...]:
    """(kernel, strides, dilations) of a Conv/Pool node; the kernel comes from W when omitted."""
    kernel = attribute(node, "kernel_shape")
    if kernel is None:
        dims = em.dims(w) if w else None
        if dims is None or not all(isinstance(d, int) for d in dims[2:]):
            raise NotImplementedError("the kernel size is not known statically")
        kernel = dims[2:]
    n = len(kernel)
    return (list(kernel), list(attribute(node, "strides", [1] * n)),
            list(attribute(node, "dilations", [1] * n)))


def pads_begin(node: onnx.NodeProto, em: Emitter, x: str, kernel: Sequence[int],
               strides: Sequence[int], dilations: Sequence[int]) -> str:
    """The leading padding per spatial axis as an int64 tensor (auto_pad resolved at run time)."""
    n = len(kernel)
    auto = attribute(node, "auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        return em.const(list(attribute(node, "pads", [0] * 2 * n))[:n])
    if auto == "VALID":
        return em.const([0] * n)
    size = em.shape(x, start=2)
    s = em.const(list(strides))
    out = em.do("Div", em.do("Sub", em.do("Add", size, s), em.const([1] * n)), s)
    k_eff = em.const([(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)])
    need = em.do("Sub", em.do("Add", em.do("Mul", em.do("Sub", out, em.const([1] * n)), s),
                              k_eff), size)
    total = em.do("Max", need, em.const([0] * n))
    half = em.do("Div", total, em.const([2] * n))
    return half if auto == "SAME_UPPER" else em.do("Sub", total, half)


def adjoint_conv(em: Emitter, g: str, w: str, size: str, begin: str, strides: Sequence[int],
                 dilations: Sequence[int], group: int = 1) -> str:
    """Transpose of a padded Conv: ConvTranspose(pads=0), crop the pad, zero-fill the tail.

    `size` holds the forward input's spatial dims; rows no window touched get zeros.
    """
    n = len(strides)
    full = em.do("ConvTranspose", g, w, strides=list(strides), dilations=list(dilations),
                 group=group)
    axes = em.const(list(range(2, 2 + n)))
    crop = em.do("Slice", full, begin, em.do("Add", begin, size), axes)
    tail = em.do("Sub", size, em.shape(crop, start=2))
    pads = em.do("Concat", em.const([0] * (n + 4)), tail, axis=0)
    return em.do("Pad", crop, pads)


@rule("Conv")
def conv(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    x, w = node.input[0], node.input[1]
    kernel, strides, dilations = window(node, em, w)
    begin = pads_begin(node, em, x, kernel, strides, dilations)
    group = attribute(node, "group", 1)
    gx = adjoint_conv(em, grads[0], w, em.shape(x, start=2), begin, strides, dilations, group)
    return [gx]


@rule("ConvTranspose")
def conv_transpose(node: onnx.NodeProto, grads: list[str | None],
                   em: Emitter) -> list[str | None]:
    """The adjoint of ConvTranspose is a Conv with the same weights, strides and pads."""
    x, w = node.input[0], node.input[1]
    kernel, strides, dilations = window(node, em, w)
    n = len(kernel)
    pads = attribute(node, "pads", [0] * 2 * n)
    auto = attribute(node, "auto_pad", "NOTSET")
    if attribute(node, "output_shape") is not None or auto not in ("NOTSET", "", "VALID"):
        pads = _explicit_pads(node, em, x, kernel, strides, dilations)
    if auto == "VALID":
        pads = [0] * 2 * n
    gx = em.do("Conv", grads[0], w, strides=strides, dilations=dilations, pads=list(pads),
               group=attribute(node, "group", 1), kernel_shape=kernel)
    return [gx]


def _explicit_pads(node: onnx.NodeProto, em: Emitter, x: str, kernel: list[int],
                   strides: list[int], dilations: list[int]) -> list[int]:
    """Pads ConvTranspose derives from output_shape or SAME auto_pad (static sizes only)."""
    dims = em.dims(x)
    if dims is None or not all(isinstance(d, int) for d in dims[2:]):
        raise NotImplementedError("output_shape/auto_pad need static spatial sizes")
    size = np.array(dims[2:])
    n = len(kernel)
    extra = np.array(attribute(node, "output_padding", [0] * n))
    want = attribute(node, "output_shape")
    target = np.array(want[-n:]) if want is not None else size * np.array(strides)
    k_eff = (np.array(kernel) - 1) * np.array(dilations) + 1
    total = np.array(strides) * (size - 1) + extra + k_eff - target
    upper = attribute(node, "auto_pad", "NOTSET") == "SAME_UPPER"
    begin = total // 2 if upper else total - total // 2
    return [int(v) for v in begin] + [int(v) for v in total - begin]
