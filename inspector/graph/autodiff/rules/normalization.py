"""Normalization at inference: BatchNorm is a per-channel scale; Instance/LayerNorm use the
full normalization Jacobian (statistics depend on x). Scale/bias get no gradient."""

from __future__ import annotations

import onnx

from ..emitter import Emitter
from ..registry import attribute, rule


def channel_view(em: Emitter, vector: str, x: str) -> str:
    """Reshape a [C] vector to [C, 1, ...] so it broadcasts over x = [N, C, ...]."""
    ones = onnx.helper.make_tensor("one", onnx.TensorProto.INT64, [1], [1])
    trailing = em.do("Sub", em.do("Shape", em.shape(x)), em.const([2]))
    shape = em.do("Concat", em.const([-1]), em.do("ConstantOfShape", trailing, value=ones), axis=0)
    return em.do("Reshape", vector, shape)


@rule("BatchNormalization")
def batch_norm(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """g * scale / sqrt(var + eps), per channel (running statistics are constants)."""
    if attribute(node, "training_mode", 0):
        raise NotImplementedError("BatchNormalization in training mode")
    x, scale, _, _, var = node.input[:5]
    eps = em.scalar(attribute(node, "epsilon", 1e-5), x)
    factor = em.do("Div", scale, em.do("Sqrt", em.do("Add", var, eps)))
    return [em.do("Mul", grads[0], channel_view(em, factor, x))]


def normalized_adjoint(em: Emitter, x: str, gs: str, axes: list[int], eps: float) -> str:
    """d/dx of (x - mean)/std over `axes`, applied to gs: inv*(gs - mean(gs) - xhat*mean(gs*xhat))."""
    centred = em.do("Sub", x, em.reduce_mean(x, axes))
    var = em.reduce_mean(em.do("Mul", centred, centred), axes)
    inv = em.do("Reciprocal", em.do("Sqrt", em.do("Add", var, em.scalar(eps, x))))
    xhat = em.do("Mul", centred, inv)
    inner = em.do("Sub", em.do("Sub", gs, em.reduce_mean(gs, axes)),
                  em.do("Mul", xhat, em.reduce_mean(em.do("Mul", gs, xhat), axes)))
    return em.do("Mul", inv, inner)


def _rank(em: Emitter, x: str) -> int:
    rank = em.rank(x)
    if rank is None:
        raise NotImplementedError("the input rank is not known statically")
    return rank


@rule("InstanceNormalization")
def instance_norm(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    x, scale = node.input[:2]
    gs = em.do("Mul", grads[0], channel_view(em, scale, x))
    axes = list(range(2, _rank(em, x)))
    return [normalized_adjoint(em, x, gs, axes, attribute(node, "epsilon", 1e-5))]


@rule("LayerNormalization")
def layer_norm(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    x, scale = node.input[:2]
    rank = _rank(em, x)
    axis = attribute(node, "axis", -1) % rank
    gs = em.do("Mul", grads[0], scale)
    return [normalized_adjoint(em, x, gs, list(range(axis, rank)),
                               attribute(node, "epsilon", 1e-5))]
