"""Models for the OIP tests (an FP16 model, a model with three inputs) and plain onnxruntime as
the reference for any tensor."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def fp16_model() -> onnx.ModelProto:
    """x [N, 4] float16 -> MatMul -> Relu (node "act") -> MatMul -> y [N, 3] float16."""
    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float16), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((6, 3)).astype(np.float16), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["a"], name="act"),
             helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2")]
    graph = helper.make_graph(nodes, "fp16", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 3])], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def two_input_model() -> onnx.ModelProto:
    """image [N, 3, 8, 8] float32 and scale [N, 1] float32 -> GlobalAveragePool (node "gap") ->
    Flatten -> Mul by scale -> out [N, 3]; plus steps [N] int64 -> Cast -> count [N] float32."""
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"], name="gap"),
             helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
             helper.make_node("Mul", ["flat", "scale"], ["out"], name="mul"),
             helper.make_node("Cast", ["steps"], ["count"], name="cast", to=TensorProto.FLOAT)]
    graph = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8]),
                       helper.make_tensor_value_info("scale", TensorProto.FLOAT, ["N", 1]),
                       helper.make_tensor_value_info("steps", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("count", TensorProto.FLOAT, ["N"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def reference(model: onnx.ModelProto, feeds: dict, outputs: list[str]) -> dict[str, np.ndarray]:
    """Plain onnxruntime with `outputs` (any tensors) exposed as graph outputs."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    known = {o.name for o in m.graph.output}
    for name in outputs:
        if name not in known:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(outputs, sess.run(outputs, feeds), strict=True))
