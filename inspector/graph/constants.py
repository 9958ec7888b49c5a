"""Where a tensor's value comes from when it is a constant: initializers, Constant nodes, and
the Identity / Cast / DequantizeLinear chains exporters put between them and the layer.

Shared by the layer table (parameter counts) and weight extraction; pure ModelProto reading.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from inspector import errors

PASS_THROUGH = frozenset({"Identity", "Cast", "DequantizeLinear"})


class Constants:
    """Index of one graph's constant tensors; follows pass-through chains back to their root."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.initializers = {t.name: t for t in graph.initializer}
        self.constant_nodes = {n.output[0]: n for n in graph.node
                               if n.op_type == "Constant" and n.output}
        self.producers = {o: n for n in graph.node for o in n.output if o}

    def is_root(self, name: str) -> bool:
        """True for an initializer or the output of a Constant node."""
        return name in self.initializers or name in self.constant_nodes

    def root(self, name: str) -> str | None:
        """The initializer / Constant output `name` is computed from, or None if not constant."""
        seen: set[str] = set()
        while name and name not in seen:
            if self.is_root(name):
                return name
            seen.add(name)
            node = self.producers.get(name)
            if node is None or node.op_type not in PASS_THROUGH or not node.input:
                return None
            if node.op_type == "DequantizeLinear" and not all(
                    self.root(i) for i in node.input[1:] if i):
                return None
            name = node.input[0]
        return None

    def size(self, root: str) -> int:
        """Number of elements of a root constant, read from its dims (no data decoding)."""
        if root in self.initializers:
            return math.prod(self.initializers[root].dims)
        attr = self.constant_nodes[root].attribute[0]
        if attr.type == onnx.AttributeProto.TENSOR:
            return math.prod(attr.t.dims)
        if attr.type == onnx.AttributeProto.SPARSE_TENSOR:
            return math.prod(attr.sparse_tensor.dims)
        if attr.type in (onnx.AttributeProto.FLOATS, onnx.AttributeProto.INTS):
            return len(attr.floats) + len(attr.ints)
        if attr.type == onnx.AttributeProto.STRINGS:
            return len(attr.strings)
        return 1

    def value(self, name: str) -> np.ndarray:
        """The array `name` holds, computed through its pass-through chain (root must exist)."""
        if name in self.initializers:
            tensor = self.initializers[name]
            if tensor.data_location == onnx.TensorProto.EXTERNAL and not tensor.raw_data:
                raise errors.FailedPrecondition(
                    f"the weights of '{name}' live in an external data file that was not loaded; "
                    "load the model with its external data first")
            return numpy_helper.to_array(tensor)
        if name in self.constant_nodes:
            return _constant_node_value(self.constant_nodes[name])
        node = self.producers[name]
        x = self.value(node.input[0])
        if node.op_type == "Identity":
            return x
        if node.op_type == "Cast":
            to = helper.get_attribute_value(next(a for a in node.attribute if a.name == "to"))
            return x.astype(helper.tensor_dtype_to_np_dtype(to))
        return self._dequantize(node, x)

    def _dequantize(self, node: onnx.NodeProto, q: np.ndarray) -> np.ndarray:
        """DequantizeLinear: (q - zero_point) * scale, per tensor or along `axis`."""
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("block_size", 0):
            raise errors.InvalidArgument(
                f"DequantizeLinear node '{node.name}' uses blocked quantization, which is not supported")
        scale = self.value(node.input[1]).astype(np.float32)
        zp = (self.value(node.input[2]) if len(node.input) > 2 and node.input[2]
              else np.zeros((), np.int32))
        if scale.ndim == 1 and q.ndim > 0:
            axis = attrs.get("axis", 1) % q.ndim
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return ((q.astype(np.float32) - zp.astype(np.float32)) * scale).astype(np.float32)


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray:
    """The value of a Constant node, whichever attribute it uses."""
    attr = node.attribute[0]
    if attr.type == onnx.AttributeProto.TENSOR:
        return numpy_helper.to_array(attr.t)
    if attr.type == onnx.AttributeProto.SPARSE_TENSOR:
        raise errors.InvalidArgument(
            f"Constant '{node.output[0]}' holds a sparse tensor; sparse weights are not supported")
    value = helper.get_attribute_value(attr)
    return np.asarray(value, dtype=np.float32 if "float" in attr.name else np.int64)

