"""Weight health, BatchNorm anomalies, filter orientation, and the default tensors and bounds."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from factory import CNNBuilder, small_cnn
from onnx import TensorProto, helper, numpy_helper

from inspector.audit import (
    batchnorm_health,
    batchnorm_params,
    default_audit_tensors,
    filter_health,
    saturation_bounds,
    weight_tensors,
)


def _set(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    tensor = next(t for t in model.graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))


def test_filter_norms_sparsity_and_spread_equal_numpy(planted):
    weights = weight_tensors(planted)
    report = filter_health(weights)
    for name, (_, _, w) in weights.items():
        rows = w.reshape(w.shape[0], -1).astype(np.float64)
        norms = [f["l2_norm"] for f in report[name]["filters"]]
        np.testing.assert_allclose(norms, np.linalg.norm(rows, axis=1), rtol=1e-12)
        assert report[name]["sparsity"] == np.mean(rows == 0)
        peaks = np.abs(rows).max(axis=1)
        np.testing.assert_allclose(report[name]["range_spread"], peaks.max() / np.median(peaks))
    assert report["conv2.weight"]["range_spread"] > 50  # the 100x filter planted in conv2


def test_near_zero_and_scaled_duplicates():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 4, 3, 3))
    w[1] = -2.5 * w[4]  # opposite direction: not a duplicate
    w[2] = 3.0 * w[5] + 1e-4 * rng.standard_normal((4, 3, 3))  # same direction, other scale
    w[3] *= 1e-4
    report = filter_health({"w": ("conv", "Conv", w)})["w"]
    assert {f["index"]: f["flags"] for f in report["filters"] if f["flags"]} == {
        2: ["duplicate"], 3: ["near_zero"], 5: ["duplicate"]}


def test_weight_orientation_puts_one_output_channel_per_row():
    """ConvTranspose (group 2) and Gemm(transB=0): row o is what feeds output channel o (checked with ORT)."""
    rng = np.random.default_rng(2)
    wt = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)  # [Cin, Cout/g, k, k], g=2 -> Cout 6
    wg = rng.standard_normal((4, 5)).astype(np.float32)  # Gemm B [in, out]
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "wt"], ["y"], name="up", group=2, kernel_shape=[2, 2]),
         helper.make_node("Gemm", ["v", "wg"], ["z"], name="fc")], "orient",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4, 1, 1]),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(wt, "wt"), numpy_helper.from_array(wg, "wg")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    eye = np.eye(4, dtype=np.float32)
    y, z = ort.InferenceSession(model.SerializeToString()).run(None, {"x": eye[:, :, None, None], "v": eye})
    filters = weight_tensors(model)
    up, fc = filters["wt"][2], filters["wg"][2]
    assert up.shape == (6, 2, 2, 2) and fc.shape == (5, 4)
    for o in range(6):  # impulse i only reaches the outputs of its own group
        group_inputs = range(2 * (o // 3), 2 * (o // 3) + 2)
        np.testing.assert_array_equal(up[o], y[list(group_inputs), o])
    np.testing.assert_array_equal(fc, z.T)


def test_batchnorm_tiny_variance_and_huge_scale():
    model = small_cnn(seed=1)
    params = batchnorm_params(model)
    (node, (scale_name, scale, var)), = params.items()
    scale, var = scale.copy(), var.copy()
    var[3], scale[5] = 1e-8, 50.0
    _set(model, scale_name, scale)
    _set(model, next(n.input[4] for n in model.graph.node if n.op_type == "BatchNormalization"), var)
    report = batchnorm_health(batchnorm_params(model))[node]
    assert {c["index"]: c["flags"] for c in report["channels"] if c["flags"]} == {
        3: ["tiny_variance"], 5: ["huge_scale"]}
    assert report["channels"][3]["variance"] == np.float32(1e-8)


def test_default_tensors_and_saturation_bounds():
    b = CNNBuilder((1, 3, 8, 8))
    x = b.conv(b.input_name, 4, name="c")
    relu6 = b.node("Clip", [x, b.init("lo", np.float32(0)), b.init("hi", np.float32(6))], name="relu6")
    b.nodes.append(helper.make_node("Constant", [], ["cap"], value=numpy_helper.from_array(np.float32(2.5))))
    capped = b.node("Clip", [relu6, "", "cap"], name="cap_only")
    hs = b.node("HardSwish", [capped], name="hswish")
    sig = b.node("Sigmoid", [hs], name="sig")
    hsig = b.node("HardSigmoid", [sig], name="hsig")
    added = b.node("Add", [hsig, b.node("Relu", [x], name="r")], name="sum")
    b.node("MaxPool", [added], name="pool", kernel_shape=[2, 2])
    model = helper.make_model(helper.make_graph(b.nodes, "g", [b.input], [
        helper.make_tensor_value_info("pool_out", TensorProto.FLOAT, None)], b.inits))
    assert default_audit_tensors(model) == ["c_out", "relu6_out", "cap_only_out", "hswish_out", "sig_out",
                                            "hsig_out", "r_out", "sum_out"]
    assert saturation_bounds(model) == {"relu6_out": (0.0, 6.0), "cap_only_out": (-np.inf, 2.5),
                                        "sig_out": (0.0, 1.0), "hsig_out": (0.0, 1.0)}
    old = helper.make_graph([helper.make_node("Clip", ["x"], ["y"], min=0.0, max=6.0)], "old",
                            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    opset10 = helper.make_model(old, opset_imports=[helper.make_opsetid("", 10)])
    assert saturation_bounds(opset10) == {"y": (0.0, 6.0)}


def test_weights_behind_cast_and_dequantize_are_audited():
    """fp16 and int8 exports keep conv weights behind Cast / DequantizeLinear: still filters."""
    from onnx import TensorProto, helper, numpy_helper

    from inspector.audit.weights import weight_tensors

    rng = np.random.default_rng(0)
    w16 = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)
    q = rng.integers(-100, 100, (5, 4, 1, 1)).astype(np.int8)
    nodes = [helper.make_node("Cast", ["w16"], ["w1"], to=TensorProto.FLOAT),
             helper.make_node("Conv", ["x", "w1"], ["y1"], name="conv_fp16", pads=[1, 1, 1, 1]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w2"]),
             helper.make_node("Conv", ["y1", "w2"], ["y2"], name="conv_int8")]
    graph = helper.make_graph(
        nodes, "chains", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w16, "w16"), numpy_helper.from_array(q, "q"),
         numpy_helper.from_array(np.float32(0.05), "s"), numpy_helper.from_array(np.int8(3), "z")])
    found = weight_tensors(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert {name: node for name, (node, _, _) in found.items()} == {"w16": "conv_fp16", "q": "conv_int8"}
    np.testing.assert_array_equal(found["w16"][2], w16.astype(np.float32))
    np.testing.assert_allclose(found["q"][2], (q.astype(np.float32) - 3) * 0.05, rtol=1e-6)
