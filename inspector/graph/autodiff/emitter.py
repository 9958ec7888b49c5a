"""Emitter: what a VJP rule uses to append backward nodes (fresh names, constants, shape help)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Dims = list[int | str | None]
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16,
                         TensorProto.BFLOAT16})


class Emitter:
    """Collects backward nodes and initializers for one gradient model."""

    def __init__(self, taken: Iterable[str], types: dict[str, tuple[int, Dims | None]],
                 opset: int, policy: str, needs: set[str],
                 constants: dict[str, onnx.TensorProto] | None = None) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.taken = set(taken)
        self.types = types
        self.opset = opset
        self.policy = policy
        self.needs_grad = needs
        self.constants = constants or {}
        self.derived: dict[tuple, str] = {}  # build-time tensors made from constants, by recipe
        self._count = 0

    def fresh(self, base: str) -> str:
        """A tensor or node name not used anywhere in the model yet."""
        while True:
            self._count += 1
            name = f"{base}__bw{self._count}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def needs(self, tensor: str) -> bool:
        """Whether a gradient must flow into `tensor` (it depends on a `wrt` tensor)."""
        return bool(tensor) and tensor in self.needs_grad

    def op(self, op_type: str, inputs: Sequence[str], n_out: int = 1, **attrs) -> str | list[str]:
        """Append one node; return its output name (or names when n_out > 1)."""
        outs = [self.fresh(f"{op_type.lower()}") for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs,
                                           name=self.fresh(f"grad_{op_type}"), **attrs))
        return outs[0] if n_out == 1 else outs

    def do(self, op_type: str, *inputs: str, **attrs) -> str:
        """Single-output shorthand for op()."""
        out = self.op(op_type, inputs, **attrs)
        assert isinstance(out, str)
        return out

    def const(self, value, dtype=np.int64) -> str:
        """An initializer holding `value`."""
        name = self.fresh("const")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def constant(self, tensor: str) -> np.ndarray | None:
        """The value of a forward tensor fixed at build time (initializer or Constant), if any."""
        found = self.constants.get(tensor)
        return None if found is None else numpy_helper.to_array(found)

    def dtype(self, tensor: str) -> int:
        """ONNX element type of a forward tensor (float when shape inference did not say)."""
        elem = self.types.get(tensor, (0, None))[0]
        return elem or TensorProto.FLOAT

    def grad_dtype(self, tensor: str) -> int:
        """Element type of the gradient of `tensor`: its own, or float for an integer tensor (a
        quantized value's gradient is a float, see rules/quantized.py)."""
        elem = self.dtype(tensor)
        return elem if elem in FLOAT_TYPES else TensorProto.FLOAT

    def dims(self, tensor: str) -> Dims | None:
        return self.types.get(tensor, (0, None))[1]

    def rank(self, tensor: str) -> int | None:
        dims = self.dims(tensor)
        return None if dims is None else len(dims)

    def scalar(self, value: float, like: str) -> str:
        """A scalar constant of the element type of `like`'s gradient."""
        np_type = helper.tensor_dtype_to_np_dtype(self.grad_dtype(like))
        return self.const(value, dtype=np_type)

    def shape(self, tensor: str, start: int | None = None, end: int | None = None) -> str:
        attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
        return self.do("Shape", tensor, **attrs)

    def reshape_like(self, g: str, like: str) -> str:
        return self.do("Reshape", g, self.shape(like))

    def zeros_like(self, like: str) -> str:
        zero = helper.make_tensor("zero", self.dtype(like), [1], [0])
        return self.do("ConstantOfShape", self.shape(like), value=zero)

    def cast_like(self, x: str, like: str) -> str:
        """`x` in the element type of `like`'s gradient (float for an integer `like`)."""
        if self.opset >= 15 and self.dtype(like) in FLOAT_TYPES:
            return self.do("CastLike", x, like)
        return self.do("Cast", x, to=self.grad_dtype(like))

    def where(self, mask: str, g: str, like: str) -> str:
        """g where mask holds, else zero (of the element type of `like`'s gradient)."""
        return self.do("Where", mask, g, self.scalar(0.0, like))

    def reduce_sum(self, x: str, axes: Sequence[int] | str, keepdims: int = 1) -> str:
        ax = axes if isinstance(axes, str) else self.const(list(axes))
        return self.do("ReduceSum", x, ax, keepdims=keepdims)

    def reduce_mean(self, x: str, axes: Sequence[int], keepdims: int = 1) -> str:
        if self.opset >= 18:
            return self.do("ReduceMean", x, self.const(list(axes)), keepdims=keepdims)
        return self.do("ReduceMean", x, axes=list(axes), keepdims=keepdims)

    def unbroadcast(self, g: str, x: str, y: str) -> str:
        """Sum `g` (shaped like y = broadcast result) down to the shape of `x`."""
        dx, dy = self.dims(x), self.dims(y)
        if dx is not None and dy is not None and len(dx) == len(dy) and all(
                (isinstance(a, int) and a != 1) or (a is not None and a == b)
                for a, b in zip(dx, dy, strict=True)):
            return g
        sx, sg = self.shape(x), self.shape(g)
        missing = self.do("Sub", self.do("Shape", sg), self.do("Shape", sx))
        one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
        padded = self.do("Concat", self.do("ConstantOfShape", missing, value=one), sx, axis=0)
        squash = self.do("Equal", padded, self.const([1]))
        axes = self.do("Reshape", self.do("NonZero", squash), self.const([-1]))
        summed = self.do("ReduceSum", g, axes, keepdims=1, noop_with_empty_axes=1)
        return self.do("Reshape", summed, sx)
