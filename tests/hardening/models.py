"""Hostile and slow models for the hardening tests, built with onnx.helper (opset 17)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def loop_model(iterations: int, size: int = 128) -> onnx.ModelProto:
    """x[1,3,8,8] -> x + 0 * (a size x size MatMul chain run `iterations` times): slow on purpose.

    The answer stays exactly x, so a finished run is checkable; the time grows with `iterations`.
    """
    a = numpy_helper.from_array(np.eye(size, dtype=np.float32), "eye")
    body = helper.make_graph(
        [helper.make_node("MatMul", ["m_in", "eye_b"], ["m_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("m_in", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("m_out", TensorProto.FLOAT, [size, size])],
        initializer=[numpy_helper.from_array(np.eye(size, dtype=np.float32), "eye_b")])
    nodes = [
        helper.make_node("Loop", ["trips", "cond", "eye"], ["m_final"], body=body, name="slow_loop"),
        helper.make_node("ReduceSum", ["m_final"], ["m_sum"], keepdims=0, name="sum"),
        helper.make_node("Mul", ["m_sum", "zero"], ["m_zero"], name="zero_it"),
        helper.make_node("Add", ["x", "m_zero"], ["y"], name="out"),
    ]
    graph = helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        initializer=[a, numpy_helper.from_array(np.array(iterations, np.int64), "trips"),
                     numpy_helper.from_array(np.array(True), "cond"),
                     numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def memory_bomb(side: int = 60_000) -> onnx.ModelProto:
    """A tiny file whose run allocates side x side float32 (14 GB at 60000): refused by vetting."""
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x1", "shape"], ["big"]),
         helper.make_node("ReduceMax", ["big"], ["m"], keepdims=0),
         helper.make_node("Add", ["x", "m"], ["y"])],
        "bomb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        initializer=[numpy_helper.from_array(np.ones((1, 1), np.float32), "x1"),
                     numpy_helper.from_array(np.array([side, side], np.int64), "shape")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def untyped_output_model() -> onnx.ModelProto:
    """Relu with a graph output lacking a type: onnx.checker refuses it, onnxruntime runs it."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "untyped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_empty_tensor_value_info("y")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def custom_op_model() -> onnx.ModelProto:
    """An operator of an unknown custom domain: the checker passes, onnxruntime cannot load it."""
    graph = helper.make_graph(
        [helper.make_node("FooBar", ["x"], ["y"], domain="com.example")], "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.example", 1)], ir_version=8)
