"""RoiAlign (avg mode): the gradient of X is the bilinear-sample weights scattered back.

Each sample's bilinear weight is a product of a row weight and a column weight, and so is its
validity test, so one roi's output is Ay @ X[b] @ Ax^T (Ay: [out_h, H], Ax: [out_w, W], the
sums of the sample weights of each bin divided by the sample count). The gradient of X[b] is
then the sum over the rois of batch b of Ay^T @ g @ Ax. The sample positions follow
onnxruntime's RoiAlign kernel; rois (input 1) get no gradient.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..emitter import Emitter
from ..registry import attribute, rule


def _scalar_dim(em: Emitter, x: str, axis: int) -> str:
    """Dimension `axis` of x as a 0-d tensor of x's element type."""
    dim = em.do("Reshape", em.shape(x, start=axis, end=axis + 1), em.const([], dtype=np.int64))
    return em.cast_like(dim, x)


def _axis_weights(em: Emitter, x: str, start: str, size: str, pooled: int, sampling: int,
                  extent: str) -> tuple[str, str]:
    """([R, pooled, extent] summed bilinear weights along one axis, [R] samples per bin).

    `start`, `size` are [R] (roi start and length in feature-map units), `extent` the 0-d
    size of the feature map along this axis.
    """
    np_type = helper.tensor_dtype_to_np_dtype(em.dtype(x))
    column = em.const([-1, 1, 1])
    bin_size = em.do("Div", size, em.scalar(float(pooled), x))
    if sampling > 0:
        grid = em.do("Expand", em.scalar(float(sampling), x), em.shape(size))
        steps = em.const(np.arange(sampling), dtype=np_type)
    else:  # adaptive: ceil(size / pooled) samples per bin, up to the largest over the rois
        grid = em.do("Ceil", bin_size)
        most = em.do("ReduceMax", grid, keepdims=0)
        steps = em.do("Range", em.scalar(0.0, x), most, em.scalar(1.0, x))
    bins = em.const(np.arange(pooled).reshape(1, pooled, 1), dtype=np_type)
    steps = em.do("Reshape", steps, em.const([1, 1, -1]))                       # [1, 1, G]
    b3, g3 = em.do("Reshape", bin_size, column), em.do("Reshape", grid, column)  # [R, 1, 1]
    offset = em.do("Div", em.do("Mul", em.do("Add", steps, em.scalar(0.5, x)), b3), g3)
    coord = em.do("Add", em.do("Add", em.do("Reshape", start, column), em.do("Mul", bins, b3)),
                  offset)                                                        # [R, P, G]
    inside = em.do("And", em.do("Not", em.do("Less", coord, em.scalar(-1.0, x))),
                   em.do("Not", em.do("Greater", coord, extent)))
    used = em.do("And", inside, em.do("Less", steps, g3))
    clamped = em.do("Max", coord, em.scalar(0.0, x))
    low = em.do("Floor", clamped)
    last = em.do("Sub", extent, em.scalar(1.0, x))
    edge = em.do("Not", em.do("Less", low, last))
    low = em.do("Where", edge, last, low)
    high = em.do("Where", edge, last, em.do("Add", low, em.scalar(1.0, x)))
    frac = em.do("Where", edge, em.scalar(0.0, x), em.do("Sub", clamped, low))
    keep = em.cast_like(used, x)
    w_high = em.do("Mul", frac, keep)
    w_low = em.do("Mul", em.do("Sub", em.scalar(1.0, x), frac), keep)
    positions = em.do("Reshape", em.do("Range", em.scalar(0.0, x), extent, em.scalar(1.0, x)),
                      em.const([1, 1, 1, -1]))                                   # [1, 1, 1, S]
    tail = em.const([-1])

    def spread(index: str, weight: str) -> str:
        hit = em.cast_like(em.do("Equal", em.do("Unsqueeze", index, tail), positions), x)
        return em.do("Mul", hit, em.do("Unsqueeze", weight, tail))

    total = em.do("Add", spread(low, w_low), spread(high, w_high))          # [R, P, G, S]
    return em.do("ReduceSum", total, em.const([2]), keepdims=0), grid


@rule("RoiAlign")
def roi_align(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    x, rois, batch = node.input[0], node.input[1], node.input[2]
    mode = attribute(node, "mode", "avg")
    if mode != "avg":
        raise NotImplementedError(f"RoiAlign mode '{mode}' (only 'avg' has a gradient rule)")
    # Opset 10 models are converted to opset >= 16 with the mode made explicit.
    half = attribute(node, "coordinate_transformation_mode", "half_pixel")
    if half not in ("half_pixel", "output_half_pixel"):
        raise NotImplementedError(f"RoiAlign coordinate_transformation_mode '{half}'")
    out_h, out_w = attribute(node, "output_height", 1), attribute(node, "output_width", 1)
    sampling = attribute(node, "sampling_ratio", 0)
    scale = attribute(node, "spatial_scale", 1.0)

    shift = em.scalar(0.5 if half == "half_pixel" else 0.0, x)
    corners = em.do("Sub", em.do("Mul", em.cast_like(rois, x), em.scalar(scale, x)), shift)

    def column(k: int) -> str:
        return em.do("Gather", corners, em.const(k), axis=1)

    starts, ends = (column(0), column(1)), (column(2), column(3))
    sizes = [em.do("Sub", e, s) for s, e in zip(starts, ends, strict=True)]
    if half == "output_half_pixel":
        sizes = [em.do("Max", s, em.scalar(1.0, x)) for s in sizes]
    ax, grid_w = _axis_weights(em, x, starts[0], sizes[0], out_w, sampling, _scalar_dim(em, x, 3))
    ay, grid_h = _axis_weights(em, x, starts[1], sizes[1], out_h, sampling, _scalar_dim(em, x, 2))
    count = em.do("Max", em.do("Mul", grid_h, grid_w), em.scalar(1.0, x))
    ay = em.do("Div", ay, em.do("Reshape", count, em.const([-1, 1, 1])))
    ay_t = em.do("Unsqueeze", em.do("Transpose", ay, perm=[0, 2, 1]), em.const([1]))
    per_roi = em.do("MatMul", em.do("MatMul", ay_t, grads[0]),
                    em.do("Unsqueeze", ax, em.const([1])))                      # [R, C, H, W]
    images = em.do("Range", em.const(0), em.do("Reshape", em.shape(x, end=1), em.const([])),
                   em.const(1))
    owner = em.cast_like(em.do("Equal", em.do("Unsqueeze", batch, em.const([0])),
                               em.do("Unsqueeze", images, em.const([1]))), x)   # [N, R]
    summed = em.do("MatMul", owner, em.do("Flatten", per_roi, axis=1))
    return [em.reshape_like(summed, x)]
