"""find_weights through Identity, Cast, DequantizeLinear (per tensor / per axis) and Constant nodes.

Each weight feeds a MatMul with an identity matrix on the left, so onnxruntime itself computes
the value the layer consumes: find_weights must return exactly that.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from factory import small_cnn
from onnx import TensorProto, helper, numpy_helper

from inspector import errors
from inspector.graph.info import describe_model
from inspector.graph.weights import find_weights

K, N = 4, 6
rng = np.random.default_rng(0)
Q = rng.integers(-128, 127, size=(K, N), dtype=np.int8)
Q_U8 = rng.integers(0, 255, size=(K, N), dtype=np.uint8)
HALF = rng.standard_normal((K, N)).astype(np.float16)
PLAIN = rng.standard_normal((K, N)).astype(np.float32)
AXIS_SCALE = np.linspace(0.01, 0.06, N).astype(np.float32)
AXIS_ZP = np.arange(N, dtype=np.uint8) + 120


def _chains_model() -> onnx.ModelProto:
    inits = [numpy_helper.from_array(Q, "q"), numpy_helper.from_array(np.float32(0.05), "s"),
             numpy_helper.from_array(np.int8(3), "zp"), numpy_helper.from_array(Q_U8, "qa"),
             numpy_helper.from_array(AXIS_SCALE, "sa"), numpy_helper.from_array(AXIS_ZP, "zpa"),
             numpy_helper.from_array(HALF, "h")]
    nodes = [
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["q_dq"]),
        helper.make_node("Identity", ["q_dq"], ["q_w"]),
        helper.make_node("MatMul", ["x", "q_w"], ["y_tensor"], name="mm_tensor"),
        helper.make_node("DequantizeLinear", ["qa", "sa", "zpa"], ["qa_w"], axis=1),
        helper.make_node("MatMul", ["x", "qa_w"], ["y_axis"], name="mm_axis"),
        helper.make_node("Cast", ["h"], ["h32"], to=TensorProto.FLOAT),
        helper.make_node("Identity", ["h32"], ["h_w"]),
        helper.make_node("MatMul", ["x", "h_w"], ["y_cast"], name="mm_cast"),
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(PLAIN, "c")),
        helper.make_node("Constant", [], ["cb"], value=numpy_helper.from_array(PLAIN[0], "cb")),
        helper.make_node("Identity", ["cb"], ["cb_id"]),
        helper.make_node("Gemm", ["x", "c", "cb_id"], ["y_gemm"], name="gemm_const"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [K, K])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [K, N])
            for n in ("y_tensor", "y_axis", "y_cast", "y_gemm")]
    model = helper.make_model(helper.make_graph(nodes, "chains", [x], outs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _ort_values() -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(_chains_model().SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"x": np.eye(K, dtype=np.float32)}), strict=True))


def test_chains_match_what_onnxruntime_computes():
    refs = {(w.node, w.role): w for w in find_weights(_chains_model())}
    ort_out = _ort_values()
    expected = {"mm_tensor": ("y_tensor", "q"), "mm_axis": ("y_axis", "qa"),
                "mm_cast": ("y_cast", "h"), "gemm_const": ("y_gemm", "c")}
    for node, (out, root) in expected.items():
        w = refs[(node, "weight")]
        assert w.initializer == root and w.array.dtype == np.float32
        ref = ort_out[out] - (PLAIN[0] if node == "gemm_const" else 0)
        np.testing.assert_allclose(w.array, ref, rtol=1e-6, atol=1e-6)
    # independent closed forms of the dequantization
    np.testing.assert_allclose(refs[("mm_tensor", "weight")].array, (Q.astype(np.float32) - 3) * 0.05,
                               rtol=1e-6)
    np.testing.assert_allclose(refs[("mm_axis", "weight")].array,
                               (Q_U8.astype(np.float32) - AXIS_ZP) * AXIS_SCALE, rtol=1e-6)
    assert refs[("gemm_const", "bias")].initializer == "cb"
    np.testing.assert_array_equal(refs[("gemm_const", "bias")].array, PLAIN[0])
    assert set(refs) == {*((n, "weight") for n in expected), ("gemm_const", "bias")}


def test_conv_per_axis_dequantize_and_layer_table():
    wq = rng.integers(-100, 100, size=(3, 2, 3, 3), dtype=np.int8)
    scale = np.array([0.1, 0.2, 0.3], np.float32)
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"], axis=0),
             helper.make_node("Conv", ["x", "w"], ["y"], name="qconv", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "qconv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 5])],
        [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(scale, "ws")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (w,) = find_weights(model)
    np.testing.assert_allclose(w.array, wq.astype(np.float32) * scale[:, None, None, None], rtol=1e-6)
    layers = {layer.name: layer for layer in describe_model(model).layers}
    assert layers["qconv"].has_weights and layers["qconv"].weight_names == ("wq",)
    assert layers["qconv"].parameter_count == wq.size
    assert layers["DequantizeLinear_0"].parameter_count == wq.size + scale.size


def test_selectors_and_errors():
    model = small_cnn()
    got = find_weights(model, ["conv1", "fc_out"])
    assert [(w.node, w.role) for w in got] == [("conv1", "weight"), ("conv1", "bias"),
                                               ("fc", "weight"), ("fc", "bias")]
    fc = next(t for t in model.graph.initializer if t.name == "fc.weight")
    np.testing.assert_array_equal(got[2].array, numpy_helper.to_array(fc))
    assert len(find_weights(model)) == 14
    with pytest.raises(errors.InvalidArgument, match="'conv_1'.*'conv1'"):
        find_weights(model, ["conv_1"])
    with pytest.raises(errors.InvalidArgument, match="'relu1' has no constant weights"):
        find_weights(model, ["relu1"])
