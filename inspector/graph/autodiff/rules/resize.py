"""Resize of the last two axes, any mode: per axis it is a fixed matrix R (y = R_H x R_W^T).
We get R by resizing an identity matrix with the same op, so the adjoint R_H^T g R_W is
exact for nearest, linear and cubic modes and every coordinate transformation."""

from __future__ import annotations

import onnx
from onnx import helper

from ..emitter import Emitter
from ..registry import attribute, rule


def _axis_matrix(node: onnx.NodeProto, em: Emitter, axis: int, size: str) -> str:
    """Resize of eye(size) (as [1,1,n,n]) along one axis: [1,1,out,n] for H, [1,1,n,out] for W."""
    x = node.input[0]
    zero = helper.make_tensor("zero", em.grad_dtype(x), [1], [0])  # float for quantized (int8) tensors
    square = em.do("ConstantOfShape", em.do("Concat", size, size, axis=0), value=zero)
    eye = em.do("Reshape", em.do("EyeLike", square), em.do(
        "Concat", em.const([1, 1]), size, size, axis=0))
    sizes = node.input[3] if len(node.input) > 3 and node.input[3] else ""
    keep = [a for a in node.attribute if a.name not in ("axes", "keep_aspect_ratio_policy")]
    picked = em.do("Slice", sizes or node.input[2], em.const([axis]), em.const([axis + 1]))
    if sizes:
        parts = [em.const([1, 1]), picked, size] if axis == 2 else [em.const([1, 1]), size, picked]
        inputs = [eye, "", "", em.do("Concat", *parts, axis=0)]
    else:
        one = em.const([1.0, 1.0], dtype="float32")
        parts = [one, picked, em.const([1.0], dtype="float32")] if axis == 2 else [
            one, em.const([1.0], dtype="float32"), picked]
        inputs = [eye, "", em.do("Concat", *parts, axis=0)]
    out = em.fresh("resize_matrix")
    em.nodes.append(helper.make_node("Resize", inputs, [out], name=em.fresh("resize_matrix")))
    em.nodes[-1].attribute.extend(keep)
    return out


@rule("Resize")
def resize(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    x = node.input[0]
    if em.rank(x) != 4:
        raise NotImplementedError("only 4-D Resize (of the two last axes) is supported")
    if attribute(node, "coordinate_transformation_mode", "") == "tf_crop_and_resize":
        raise NotImplementedError("tf_crop_and_resize")
    if attribute(node, "axes") is not None:
        raise NotImplementedError("Resize with the axes attribute")
    rows = _axis_matrix(node, em, 2, em.shape(x, start=2, end=3))
    cols = _axis_matrix(node, em, 3, em.shape(x, start=3, end=4))
    back = em.do("MatMul", em.do("Transpose", rows, perm=[0, 1, 3, 2]), grads[0])
    return [em.do("MatMul", back, em.do("Transpose", cols, perm=[0, 1, 3, 2]))]
