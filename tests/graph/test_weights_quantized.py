"""find_weights on quantized models (onnxruntime.quantization) and selection by weight tensor name.

QOperator layers (QLinearConv, QGemm, QLinearMatMul) and dynamic ones (ConvInteger,
MatMulInteger, whose weight scale sits in the Mul after them) give the dequantized float
weights: exactly (q - zero_point) * scale from the stored integers, and within half a
quantization step of the float weights they were made from. QDQ models read through the
DequantizeLinear chain. The layer table's weight_names name the same tensors.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    quantize_dynamic,
    quantize_static,
)

from inspector import errors
from inspector.graph.info import describe_model
from inspector.graph.weights import find_weights

N = helper.make_node
rng = np.random.default_rng(3)
FLOAT = {"conv1.weight": rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.3,
         "conv1.bias": rng.standard_normal(6).astype(np.float32) * 0.1,
         "fc.weight": rng.standard_normal((7, 6)).astype(np.float32) * 0.3,
         "fc.bias": rng.standard_normal(7).astype(np.float32) * 0.1,
         "head.weight": rng.standard_normal((7, 5)).astype(np.float32) * 0.3}
LAYERS = {"conv1": "conv1.weight", "fc": "fc.weight", "head": "head.weight"}


def float_model() -> onnx.ModelProto:
    """conv -> relu -> global average pool -> gemm (transB) -> matmul, names as torchvision's."""
    graph = helper.make_graph(
        [N("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1] * 4),
         N("Relu", ["c1"], ["r1"], name="relu1"), N("GlobalAveragePool", ["r1"], ["g"], name="gap"),
         N("Flatten", ["g"], ["f"], name="flatten"),
         N("Gemm", ["f", "fc.weight", "fc.bias"], ["h"], name="fc", transB=1),
         N("MatMul", ["h", "head.weight"], ["logits"], name="head")],
        "float", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(v, k) for k, v in FLOAT.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


class Calibration(CalibrationDataReader):
    def __init__(self) -> None:
        self.feeds = iter({"input": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}
                          for _ in range(4))

    def get_next(self):
        return next(self.feeds, None)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> dict[str, onnx.ModelProto]:
    folder = tmp_path_factory.mktemp("weights_quantized")
    source = folder / "float.onnx"
    onnx.save(float_model(), source)
    models = {}
    for how in ("qoperator", "qdq", "dynamic", "dynamic_per_channel"):
        target = folder / f"{how}.onnx"
        if how.startswith("dynamic"):
            quantize_dynamic(source, target, per_channel=how.endswith("channel"))
        else:
            quantize_static(source, target, Calibration(), per_channel=True,
                            quant_format=QuantFormat.QOperator if how == "qoperator" else QuantFormat.QDQ)
        models[how] = onnx.load(target)
    return models


def _stored(model: onnx.ModelProto, root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, scale, zero point) onnxruntime stored for initializer `root` ("<name>_quantized")."""
    found = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    base = root.removesuffix("_quantized")
    return found[root], found[f"{base}_scale"], found[f"{base}_zero_point"]


@pytest.mark.parametrize("how", ["qoperator", "qdq", "dynamic", "dynamic_per_channel"])
def test_dequantized_weights_match_the_float_weights(quantized, how):
    model = quantized[how]
    ops = {n.op_type for n in model.graph.node}
    expected_ops = {"qoperator": {"QLinearConv", "QGemm", "QLinearMatMul"}, "qdq": {"Conv", "Gemm"},
                    "dynamic": {"ConvInteger", "MatMulInteger"}}
    assert expected_ops[how.removesuffix("_per_channel")] <= ops
    refs = [w for w in find_weights(model) if w.role == "weight"]
    assert len(refs) == 3
    for ref in refs:
        base = ref.initializer.removesuffix("_quantized")
        original = FLOAT[base.removesuffix("_Transposed")]
        q, scale, zero = _stored(model, ref.initializer)
        axis = 0 if scale.size == 1 or q.shape[0] == scale.size else 1
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape) if scale.size > 1 else scale
        zero = zero.reshape(shape).astype(np.float32) if zero.size > 1 else zero.astype(np.float32)
        exact = (q.astype(np.float32) - zero) * scale
        assert ref.array.dtype == np.float32
        np.testing.assert_allclose(ref.array, exact, rtol=1e-6, atol=0)
        seen = ref.array.T if base.endswith("_Transposed") else ref.array
        assert seen.shape == original.shape
        step = np.broadcast_to(scale.T if base.endswith("_Transposed") else scale, original.shape)
        assert np.all(np.abs(seen - original) <= 0.5 * step + 1e-6), ref.node
        if how == "qoperator" and ref.op_type == "QLinearConv":
            assert scale.size == 6  # per output channel


def test_quantized_biases_are_dequantized_with_input_times_weight_scale(quantized):
    refs = {w.initializer: w for w in find_weights(quantized["qoperator"]) if w.role == "bias"}
    assert set(refs) == {"conv1.bias_quantized", "fc.bias_quantized"}
    for name, ref in refs.items():
        original = FLOAT[name.removesuffix("_quantized")]
        assert ref.array.dtype == np.float32 and ref.array.shape == original.shape
        np.testing.assert_allclose(ref.array, original, atol=1e-4)


@pytest.mark.parametrize("how", ["qoperator", "qdq", "dynamic"])
def test_layer_table_names_the_same_weights(quantized, how):
    model = quantized[how]
    from_refs: dict[str, list[str]] = {}
    for ref in find_weights(model):
        from_refs.setdefault(ref.node, []).append(ref.initializer)
    table = {layer.name: list(layer.weight_names) for layer in describe_model(model).layers
             if layer.has_weights}
    assert table == from_refs and len(table) == 3


def test_select_by_initializer_and_chain_tensor(quantized):
    model = float_model()
    (w,) = find_weights(model, ["conv1.weight"])
    assert (w.node, w.role) == ("conv1", "weight")
    np.testing.assert_array_equal(w.array, FLOAT["conv1.weight"])
    assert [(r.node, r.role) for r in find_weights(model, ["fc.bias", "conv1"])] == [
        ("conv1", "weight"), ("conv1", "bias"), ("fc", "bias")]
    qop = quantized["qoperator"]
    (w,) = find_weights(qop, ["fc.weight_quantized"])
    assert (w.op_type, w.role, w.initializer) == ("QGemm", "weight", "fc.weight_quantized")
    qdq = quantized["qdq"]
    dq_output = next(n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"
                     and n.input[0] == "conv1.weight_quantized")
    (w,) = find_weights(qdq, [dq_output])
    assert (w.node, w.role, w.initializer) == ("conv1", "weight", "conv1.weight_quantized")
    dynamic = quantized["dynamic"]
    conv = next(n for n in dynamic.graph.node if n.op_type == "ConvInteger")
    got = find_weights(dynamic, [conv.name])
    assert [(r.role, r.initializer) for r in got] == [("weight", "conv1.weight_quantized")]


def test_unknown_name_says_what_to_pass():
    with pytest.raises(errors.InvalidArgument, match=r"'conv1\.weights'.*'conv1\.weight'.*initializer name"):
        find_weights(float_model(), ["conv1.weights"])
    with pytest.raises(errors.InvalidArgument, match="'relu1' has no constant weights"):
        find_weights(float_model(), ["relu1"])
