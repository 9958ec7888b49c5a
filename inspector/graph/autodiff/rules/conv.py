"""Conv and ConvTranspose: each one's input gradient is the other (a flipped-weight Conv at stride 1)."""

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


def stride1_pads(node: onnx.NodeProto, kernel: Sequence[int],
                 dilations: Sequence[int]) -> list[int] | None:
    """Pads of the Conv that is the adjoint of a stride-1 Conv: k_eff-1-pad on each side.

    None where a forward pad exceeds k_eff-1 (the adjoint would need a crop).
    """
    n = len(kernel)
    k_eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    auto = attribute(node, "auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(attribute(node, "pads", [0] * 2 * n))
    elif auto == "VALID":
        pads = [0] * 2 * n
    else:  # SAME at stride 1 pads k_eff-1 in total, whatever the size
        total = [k - 1 for k in k_eff]
        begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        pads = begin + [t - b for t, b in zip(total, begin, strict=True)]
    adjoint = [k - 1 - p for k, p in zip(k_eff * 2, pads, strict=True)]
    return adjoint if min(adjoint) >= 0 else None


def flipped_weight(em: Emitter, w: str, group: int) -> str | None:
    """W with in/out channels swapped per group and the kernel flipped, as a new initializer.

    None when W is not fixed at build time. Depthwise stays depthwise (group is kept).
    """
    if ("flipped", w, group) in em.derived:  # a weight shared by several Convs is flipped once
        return em.derived["flipped", w, group]
    value = em.constant(w)
    if value is None or value.ndim < 3:
        return None
    out_ch, in_per_group, *kernel = value.shape
    per_group = value.reshape(group, out_ch // group, in_per_group, *kernel).swapaxes(1, 2)
    flipped = per_group[(..., *[slice(None, None, -1)] * len(kernel))]
    shaped = flipped.reshape(group * in_per_group, out_ch // group, *kernel)
    em.derived["flipped", w, group] = em.const(np.ascontiguousarray(shaped), dtype=value.dtype)
    return em.derived["flipped", w, group]


@rule("Conv")
def conv(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Stride 1 with a fixed W: an ordinary Conv with flipped weights (NCHWc kernels in ORT,
    no crop or pad); otherwise the ConvTranspose adjoint."""
    x, w = node.input[0], node.input[1]
    kernel, strides, dilations = window(node, em, w)
    group = attribute(node, "group", 1)
    pads = stride1_pads(node, kernel, dilations) if set(strides) == {1} else None
    flipped = flipped_weight(em, w, group) if pads is not None else None
    if flipped is not None:
        return [em.do("Conv", grads[0], flipped, dilations=list(dilations), pads=pads,
                      group=group)]
    begin = pads_begin(node, em, x, kernel, strides, dilations)
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
