"""Gradients of quantized models (onnxruntime.quantization output) by the straight-through estimator.

Small float models are quantized three ways: static QOperator (QLinearConv, QGemm, QLinearAdd,
... with QuantizeLinear/DequantizeLinear at the ends), static QDQ (float ops between Q/DQ pairs)
and dynamic (DynamicQuantizeLinear + ConvInteger/MatMulInteger, DynamicQuantizeLSTM). Checks:
- a model that is linear in its input gets exactly the gradient of the float model with the
  dequantized weights (the STE treats rounding as the identity; nothing saturates at the test
  input), so every scale factor in the rules is checked to float precision;
- a non-linear CNN (Relu fused into the output range, MaxPool on uint8, LeakyRelu, Sigmoid,
  Mul, Concat, AveragePool, GAP, Gemm, MatMul) follows the float model's gradient up to
  quantization error;
- quantization clips count (zero gradient outside the range), integer wrt tensors and quantized
  ops without a rule are refused by name instead of giving silent zeros.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from autodiff_reference import analytic
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    quantize_dynamic,
    quantize_static,
)

from inspector.errors import InvalidArgument
from inspector.graph.autodiff import NotDifferentiable, blocking_ops, build_gradient_model
from inspector.graph.autodiff.paths import STRAIGHT_THROUGH
from inspector.graph.autodiff.registry import RULES

N = helper.make_node
rng = np.random.default_rng(0)
CALIBRATION = [rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(8)]
X = 0.5 * CALIBRATION[3]  # inside every calibrated range: no clipping anywhere
SEED = np.array([[0.3, -1.0, 0.5, 2.0, -0.7]], np.float32)
QOPERATOR_OPS = {"QLinearConv", "QGemm", "QLinearMatMul", "QLinearAdd", "QLinearMul",
                 "QLinearConcat", "QLinearGlobalAveragePool", "QLinearAveragePool",
                 "QLinearSigmoid", "QLinearLeakyRelu", "QuantizeLinear", "DequantizeLinear"}


def _weights(*shape: int, k: float = 0.3) -> np.ndarray:
    return (rng.standard_normal(shape) * k).astype(np.float32)


def _model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "float", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def linear_cnn() -> onnx.ModelProto:
    """Linear in the input: a strided Conv (ConvTranspose adjoint), a stride-1 Conv (flipped
    weights), a residual Add, GAP, Gemm (transB) and MatMul."""
    inits = {"conv1.weight": _weights(6, 3, 3, 3), "conv1.bias": _weights(6, k=0.1),
             "conv2.weight": _weights(6, 6, 3, 3, k=0.2), "conv2.bias": _weights(6, k=0.1),
             "fc1.weight": _weights(7, 6), "fc1.bias": _weights(7, k=0.1),
             "fc2.weight": _weights(7, 5)}
    return _model([
        N("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1] * 4,
          strides=[2, 2]),
        N("Conv", ["c1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", pads=[1] * 4),
        N("Add", ["c1", "c2"], ["a"], name="add"),
        N("GlobalAveragePool", ["a"], ["g"], name="gap"), N("Flatten", ["g"], ["f"], name="flat"),
        N("Gemm", ["f", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
        N("MatMul", ["h", "fc2.weight"], ["logits"], name="fc2")], inits)


def cnn() -> onnx.ModelProto:
    inits = {"conv1.weight": _weights(8, 3, 3, 3), "conv1.bias": _weights(8, k=0.1),
             "conv2.weight": _weights(8, 8, 3, 3, k=0.15), "conv2.bias": _weights(8, k=0.1),
             "fc1.weight": _weights(12, 16), "fc1.bias": _weights(12, k=0.1),
             "fc2.weight": _weights(12, 5)}
    return _model([
        N("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1] * 4),
        N("Relu", ["c1"], ["r1"], name="relu1"),
        N("MaxPool", ["r1"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        N("Conv", ["p", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", pads=[1] * 4),
        N("LeakyRelu", ["c2"], ["l"], name="leaky", alpha=0.1),
        N("Add", ["l", "p"], ["a"], name="add"), N("Sigmoid", ["a"], ["s"], name="sigmoid"),
        N("Mul", ["a", "s"], ["m"], name="swish"), N("Concat", ["m", "p"], ["cat"], name="cat", axis=1),
        N("AveragePool", ["cat"], ["ap"], name="avg", kernel_shape=[2, 2], strides=[2, 2]),
        N("GlobalAveragePool", ["ap"], ["g"], name="gap"), N("Flatten", ["g"], ["f"], name="flat"),
        N("Gemm", ["f", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
        N("MatMul", ["h", "fc2.weight"], ["logits"], name="fc2")], inits)


class Calibration(CalibrationDataReader):
    def __init__(self) -> None:
        self.feeds = iter({"input": x} for x in CALIBRATION)

    def get_next(self):
        return next(self.feeds, None)


def quantize(model: onnx.ModelProto, how: str, folder, per_channel: bool = False) -> onnx.ModelProto:
    source, target = folder / "float.onnx", folder / f"{how}_{per_channel}.onnx"
    onnx.save(model, source)
    if how == "dynamic":
        quantize_dynamic(source, target, per_channel=per_channel)
    else:
        fmt = QuantFormat.QOperator if how == "qoperator" else QuantFormat.QDQ
        quantize_static(source, target, Calibration(), quant_format=fmt, per_channel=per_channel)
    return onnx.load(target)


def dequantized_float(model: onnx.ModelProto, quantized: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each weight replaced by (q - zero_point) * scale from the quantized model's
    initializers (onnxruntime's names; Gemm weights may be stored transposed)."""
    found = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for init in copy.graph.initializer:
        if not init.name.endswith("weight"):
            continue
        base = next(b for b in (init.name, f"{init.name}_Transposed")
                    if f"{b}_quantized" in found)
        q = found[f"{base}_quantized"].astype(np.float32)
        scale, zero = found[f"{base}_scale"], found[f"{base}_zero_point"].astype(np.float32)
        if scale.size > 1:  # per output channel: the axis whose length matches
            axis = 0 if q.shape[0] == scale.size else 1
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        real = (q - zero) * scale
        init.CopyFrom(numpy_helper.from_array(real.T if base != init.name else real, init.name))
    return copy


def input_gradient(model: onnx.ModelProto, x: np.ndarray = X) -> np.ndarray:
    return analytic(model, {"input": x}, "logits", ["input"], SEED)["input"]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("how, per_channel", [("qoperator", False), ("qoperator", True),
                                              ("qdq", True), ("dynamic", False), ("dynamic", True)])
def test_linear_model_gets_the_dequantized_float_gradient_exactly(tmp_path, how, per_channel):
    model = linear_cnn()
    quantized = quantize(model, how, tmp_path, per_channel)
    ops = {n.op_type for n in quantized.graph.node}
    assert {"QLinearConv", "QGemm", "QLinearMatMul", "QLinearAdd", "QLinearGlobalAveragePool"
            } <= ops if how == "qoperator" else {"ConvInteger", "MatMulInteger"} <= ops if (
        how == "dynamic") else "QuantizeLinear" in ops
    got = input_gradient(quantized)
    want = input_gradient(dequantized_float(model, quantized))
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("how", ["qoperator", "qdq", "dynamic"])
def test_nonlinear_cnn_follows_the_float_gradient(tmp_path, how):
    model = cnn()
    quantized = quantize(model, how, tmp_path, per_channel=how != "dynamic")
    ops = {n.op_type for n in quantized.graph.node}
    if how == "qoperator":
        assert QOPERATOR_OPS <= ops and "MaxPool" in ops  # MaxPool runs on uint8 there
    assert blocking_ops(quantized) == []
    got, want = input_gradient(quantized), input_gradient(model)
    assert np.count_nonzero(got) > 0.9 * got.size
    assert cosine(got, want) > 0.95
    assert 0.8 < np.linalg.norm(got) / np.linalg.norm(want) < 1.25


@pytest.mark.parametrize("fixed", [True, False])
def test_quantize_linear_clips_and_dequantize_scales(fixed):
    """Q(scale 0.1, uint8 zero point 10) clips x to [-1, 24.5]; there d(DQ(Q(x)))/dx = 1, else 0.
    Per-axis Q/DQ (axis 1, int8) scale each column by its own factor, which cancels. Scales and
    zero points as initializers (bounds folded at build time) or graph inputs (computed at run
    time)."""
    x = np.array([[-3.0, -1.0, -0.5, 0.0, 7.3, 24.5, 24.6, 70.0]], np.float32)
    nodes = [N("QuantizeLinear", ["x", "s", "z"], ["q"]), N("DequantizeLinear", ["q", "s", "z"], ["y"]),
             N("QuantizeLinear", ["x", "sa", "za"], ["qa"], axis=1),
             N("DequantizeLinear", ["qa", "sa", "za"], ["ya"], axis=1),
             N("Add", ["y", "ya"], ["out"])]
    inits = [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.uint8(10), "z"),
             numpy_helper.from_array(np.full(8, 0.5, np.float32), "sa"),
             numpy_helper.from_array(np.zeros(8, np.int8), "za")]
    feeds = {"x": x}
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])]
    if not fixed:
        feeds.update({t.name: numpy_helper.to_array(t) for t in inits})
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
        inits = []
    graph = helper.make_graph(nodes, "qdq", inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    seed = np.arange(1, 9, dtype=np.float32)[None]
    got = analytic(model, feeds, "out", ["x"], seed, fetch=["q", "y"])
    inside = np.array([0, 1, 1, 1, 1, 1, 0, 0], np.float32)        # first Q/DQ pair
    inside_axis = np.array([1, 1, 1, 1, 1, 1, 1, 0], np.float32)   # int8 at 0.5: [-64, 63.5]
    np.testing.assert_allclose(got["x"], seed * (inside + inside_axis), rtol=1e-6)
    assert got["q"][0, 0] == 0 and got["q"][0, -1] == 255 and got["y"][0, 4] == pytest.approx(7.3)


def test_wrt_an_integer_tensor_is_refused_by_name(tmp_path):
    quantized = quantize(linear_cnn(), "qoperator", tmp_path)
    tensor = next(n.output[0] for n in quantized.graph.node if n.op_type == "QLinearConv")
    with pytest.raises(InvalidArgument, match=f"'{tensor}' holds u?int8.*DequantizeLinear"):
        build_gradient_model(quantized, "logits", [tensor])


def _around(op: str, **attrs) -> onnx.ModelProto:
    """x -> QuantizeLinear -> com.microsoft `op` -> DequantizeLinear, x of shape [2, 8]."""
    scale, zero = np.float32(0.05), np.uint8(128)
    nodes = [N("QuantizeLinear", ["x", "s", "z"], ["q"]),
             N(op, ["q", "s", "z", "ys", "yz"], ["qy"], name="the_op", domain="com.microsoft",
               **attrs),
             N("DequantizeLinear", ["qy", "ys", "yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "around", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z"),
         numpy_helper.from_array(np.float32(1 / 256), "ys"), numpy_helper.from_array(np.uint8(0), "yz")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.microsoft", 1)])


@pytest.mark.parametrize("attrs", [{"axis": -1, "opset": 13}, {"axis": 1, "opset": 11}])
def test_qlinear_softmax_is_the_softmax_jacobian_at_the_dequantized_input(attrs):
    x = rng.standard_normal((2, 8)).astype(np.float32)
    seed = rng.standard_normal((2, 8)).astype(np.float32)
    got = analytic(_around("QLinearSoftmax", **attrs), {"x": x}, "y", ["x"], seed)["x"]
    deq = (np.clip(np.round(x / 0.05) + 128, 0, 255) - 128) * 0.05
    p = np.exp(deq - deq.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    want = p * (seed - (seed * p).sum(-1, keepdims=True))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_quantized_op_without_a_rule_is_named_not_silently_zero():
    """com.microsoft QLinearReduceMean between Q and DQ: the path is no longer cut at its uint8
    input (which gave all-zero gradients), so the op is reported."""
    model = _around("QLinearReduceMean", axes=[1], keepdims=1)
    assert blocking_ops(model) == [("QLinearReduceMean", "the_op")]
    with pytest.raises(NotDifferentiable, match="QLinearReduceMean"):
        build_gradient_model(model, "y", ["x"])


def test_dynamic_quantized_lstm_follows_the_float_gradient(tmp_path):
    """quantize_dynamic turns LSTM into com.microsoft DynamicQuantizeLSTM (int8 W [D, I, 4H])
    and the head into DynamicQuantizeLinear + MatMulInteger."""
    steps, hidden = 5, 8
    inits = {"lstm.W": _weights(1, 4 * hidden, 6, k=0.4), "lstm.R": _weights(1, 4 * hidden, hidden, k=0.4),
             "lstm.B": _weights(1, 8 * hidden, k=0.1), "fc.weight": _weights(hidden, 5, k=0.4),
             "shape": np.array([1, hidden], np.int64)}
    graph = helper.make_graph(
        [N("LSTM", ["x", "lstm.W", "lstm.R", "lstm.B"], ["y", "h"], name="lstm", hidden_size=hidden),
         N("Reshape", ["h", "shape"], ["h2"]), N("MatMul", ["h2", "fc.weight"], ["logits"], name="fc")],
        "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    quantized = quantize(model, "dynamic", tmp_path)
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= {n.op_type for n in quantized.graph.node}
    x = rng.standard_normal((steps, 1, 6)).astype(np.float32)
    got = analytic(quantized, {"x": x}, "logits", ["x"], SEED)["x"]
    want = analytic(model, {"x": x}, "logits", ["x"], SEED)["x"]
    assert cosine(got, want) > 0.99
    assert 0.9 < np.linalg.norm(got) / np.linalg.norm(want) < 1.1


def test_every_straight_through_op_has_a_rule():
    """paths.find_path lets integer outputs of these ops carry gradients; each needs its rule."""
    assert STRAIGHT_THROUGH <= set(RULES)


def test_resize_on_a_quantized_tensor(tmp_path):
    """QOperator keeps Resize on int8 (FPN / U-Net upsampling)."""
    inits = {"conv1.weight": _weights(4, 3, 3, 3), "fc.weight": _weights(5, 4 * 16 * 16),
             "scales": np.array([1, 1, 2, 2], np.float32), "flat": np.array([1, -1], np.int64)}
    model = _model([
        N("Conv", ["input", "conv1.weight"], ["c1"], name="conv1", pads=[1] * 4),
        N("Resize", ["c1", "", "scales"], ["up"], name="up", mode="nearest"),
        N("Reshape", ["up", "flat"], ["f"], name="flat"),
        N("Gemm", ["f", "fc.weight"], ["logits"], name="fc", transB=1)], inits)
    quantized = quantize(model, "qoperator", tmp_path)
    assert "Resize" in {n.op_type for n in quantized.graph.node}
    assert cosine(input_gradient(quantized), input_gradient(model)) > 0.95
