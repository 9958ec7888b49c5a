"""Layout ops: reshapes, transposes, concatenation, splitting and broadcasting."""

from __future__ import annotations

import numpy as np
import onnx

from ..emitter import Emitter
from ..registry import attribute, rule


@rule("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def reshape(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Same elements, same order: reshape the gradient back."""
    return [em.reshape_like(grads[0], node.input[0])]


@rule("Expand")
def expand(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    return [em.unbroadcast(grads[0], node.input[0], node.output[0])]


@rule("Transpose")
def transpose(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    perm = attribute(node, "perm")
    if perm is None:
        rank = em.rank(node.input[0])
        if rank is None:
            raise NotImplementedError("Transpose without perm needs the input rank")
        perm = list(range(rank))[::-1]
    return [em.do("Transpose", grads[0], perm=[int(i) for i in np.argsort(perm)])]


def _axis(node: onnx.NodeProto, em: Emitter, tensor: str) -> int:
    axis = attribute(node, "axis", 0)
    if axis < 0:
        rank = em.rank(tensor)
        if rank is None:
            raise NotImplementedError("a negative axis needs a known rank")
        axis += rank
    return axis


@rule("Concat", inputs=None)
def concat(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Split the gradient back into the pieces' sizes along the axis."""
    axis = _axis(node, em, node.output[0])
    sizes = em.do("Concat", *(em.shape(x, start=axis, end=axis + 1) for x in node.input), axis=0)
    parts = em.op("Split", [grads[0], sizes], n_out=len(node.input), axis=axis)
    parts = [parts] if isinstance(parts, str) else parts
    return [p if em.needs(x) else None for p, x in zip(parts, node.input, strict=True)]


@rule("Split")
def split(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Concatenate the pieces' gradients (zeros for pieces nothing depends on)."""
    axis = _axis(node, em, node.input[0])
    pieces = [g if g is not None else em.zeros_like(y)
              for g, y in zip(grads, node.output, strict=True)]
    return [em.do("Concat", *pieces, axis=axis)]


@rule("SpaceToDepth", "DepthToSpace")
def depth_space(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Both are permutations: the adjoint is the inverse rearrangement."""
    b, g, x = attribute(node, "blocksize"), grads[0], node.input[0]
    if node.op_type == "SpaceToDepth":
        return [em.do("DepthToSpace", g, blocksize=b, mode="DCR")]
    if attribute(node, "mode", "DCR") == "DCR":
        return [em.do("SpaceToDepth", g, blocksize=b)]
    block = em.const([b])
    split = em.do("Concat", em.shape(g, start=0, end=2), em.shape(x, start=2, end=3), block,
                  em.shape(x, start=3, end=4), block, axis=0)
    moved = em.do("Transpose", em.do("Reshape", g, split), perm=[0, 1, 3, 5, 2, 4])
    return [em.reshape_like(moved, x)]
