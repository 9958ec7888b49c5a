"""A real server (gRPC and HTTP edges) with a model root laid out as a Triton repository, the
models the OIP tests use, and plain onnxruntime as the reference."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from factory import small_cnn
from onnx import TensorProto, helper, numpy_helper

from inspector.config import InspectorConfig
from inspector.service.server import start_server


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


@pytest.fixture(scope="module")
def oip_server(tmp_path_factory):
    """Models under the root: cnn.onnx (a file), half/1/model.onnx (Triton's layout), two/model.onnx."""
    root = tmp_path_factory.mktemp("oip")
    models = root / "models"
    (models / "half" / "1").mkdir(parents=True)
    (models / "two").mkdir()
    onnx.save(small_cnn(seed=4), models / "cnn.onnx")
    onnx.save(fp16_model(), models / "half" / "1" / "model.onnx")
    onnx.save(two_input_model(), models / "two" / "model.onnx")
    config = InspectorConfig(store_dir=root / "store", model_roots=(models,), intra_op_threads=2)
    running = start_server(config, port=0, http_port=0)
    running.model_root = models
    yield running
    running.stop(grace=1.0)
