"""MatMul (any rank, numpy broadcasting) and Gemm (transA/transB, alpha, beta)."""

from __future__ import annotations

import onnx

from ..emitter import Emitter
from ..registry import attribute, rule


def _swap_last(em: Emitter, x: str, rank: int) -> str:
    return em.do("Transpose", x, perm=[*range(rank - 2), rank - 1, rank - 2])


@rule("MatMul", inputs=(0, 1))
def matmul(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """dA = g @ B^T, dB = A^T @ g, with 1-D operands promoted to matrices as numpy does."""
    a, b = node.input
    ra, rb = em.rank(a), em.rank(b)
    if ra is None or rb is None:
        raise NotImplementedError("MatMul needs the ranks of both operands")
    g = grads[0]
    a2 = em.do("Unsqueeze", a, em.const([0])) if ra == 1 else a
    b2 = em.do("Unsqueeze", b, em.const([-1])) if rb == 1 else b
    if ra == 1 and rb == 1:
        g = em.do("Reshape", g, em.const([1, 1]))
    elif ra == 1:
        g = em.do("Unsqueeze", g, em.const([-2]))
    elif rb == 1:
        g = em.do("Unsqueeze", g, em.const([-1]))
    ga = gb = None
    if em.needs(a):
        part = em.do("MatMul", g, _swap_last(em, b2, max(rb, 2)))
        ga = em.reshape_like(em.unbroadcast(part, a2, ""), a)
    if em.needs(b):
        part = em.do("MatMul", _swap_last(em, a2, max(ra, 2)), g)
        gb = em.reshape_like(em.unbroadcast(part, b2, ""), b)
    return [ga, gb]


@rule("Gemm", inputs=(0, 1, 2))
def gemm(node: onnx.NodeProto, grads: list[str | None], em: Emitter) -> list[str | None]:
    """Y = alpha*A'B' + beta*C; each operand's gradient is another Gemm."""
    a, b = node.input[:2]
    c = node.input[2] if len(node.input) > 2 else ""
    alpha, beta = attribute(node, "alpha", 1.0), attribute(node, "beta", 1.0)
    ta, tb = attribute(node, "transA", 0), attribute(node, "transB", 0)
    g = grads[0]
    ga = gb = gc = None
    if em.needs(a):
        ga = em.do("Gemm", g, b, alpha=alpha, transB=1 - tb) if not ta else em.do(
            "Gemm", b, g, alpha=alpha, transA=tb, transB=1)
    if em.needs(b):
        gb = em.do("Gemm", a, g, alpha=alpha, transA=1 - ta) if not tb else em.do(
            "Gemm", g, a, alpha=alpha, transA=1, transB=ta)
    if c and em.needs(c):
        gc = em.unbroadcast(em.do("Mul", g, em.scalar(beta, c)), c, node.output[0])
    return [ga, gb, gc]
