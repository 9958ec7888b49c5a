"""expose_tensors: exposed values equal a truncated model's, outputs unchanged, fp16 = numpy."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from factory import resnet18_like, small_cnn
from onnx import numpy_helper

from inspector import errors
from inspector.graph.expose import expose_tensors
from inspector.graph.select import resolve_tensors


def _run(model: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def _truncated(model: onnx.ModelProto, inp: str, tensor: str) -> onnx.ModelProto:
    """The part of the model that computes `tensor` (an independent reference)."""
    return onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model([inp], [tensor])


def test_exposed_equal_truncated_models_and_logits_unchanged():
    model = small_cnn()
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    plain = _run(model, {"input": x})["logits"]
    names = resolve_tensors(model, ["all"])
    exposed = expose_tensors(model, names)
    onnx.checker.check_model(exposed.model)
    assert exposed.model.graph.output[0] == model.graph.output[0]
    assert len(model.graph.output) == 1  # the original is not modified
    got = _run(exposed.model, {"input": x})
    np.testing.assert_allclose(got["logits"], plain, rtol=1e-5, atol=1e-5)
    assert exposed.outputs["logits"] == "logits"
    for name in ("relu1_out", "conv2b_out", "cat3_out", "gap_out", "flatten_out"):
        ref = _run(_truncated(model, "input", name), {"input": x})[name]
        np.testing.assert_allclose(got[exposed.outputs[name]], ref, rtol=1e-5, atol=1e-5)


def test_inputs_and_initializers_exposed_through_identity():
    model = small_cnn()
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    exposed = expose_tensors(model, ["input", "conv1.weight", "relu1_out"])
    onnx.checker.check_model(exposed.model)
    assert exposed.outputs["input"] not in ("input",) and exposed.outputs["relu1_out"] == "relu1_out"
    got = _run(exposed.model, {"input": x})
    np.testing.assert_array_equal(got[exposed.outputs["input"]], x)
    w = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "conv1.weight"))
    np.testing.assert_array_equal(got[exposed.outputs["conv1.weight"]], w)


def test_float16_equals_numpy_astype():
    model = small_cnn()
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    names = ["input", "relu1_out", "add2_out", "logits"]
    full = expose_tensors(model, names)
    half = expose_tensors(model, names, as_float16=True)
    onnx.checker.check_model(half.model)
    ref, got = _run(full.model, {"input": x}), _run(half.model, {"input": x})
    for name in names:
        out = got[half.outputs[name]]
        assert out.dtype == np.float16 and half.outputs[name] != name
        np.testing.assert_array_equal(out, ref[full.outputs[name]].astype(np.float16))
    assert half.model.graph.output[0].name == "logits"  # the fp32 output is still there


def test_exposing_a_deep_resnet_layer_keeps_logits():
    model = resnet18_like(size=64, classes=20)
    x = np.random.default_rng(4).standard_normal((1, 3, 64, 64)).astype(np.float32)
    plain = _run(model, {"input": x})["logits"]
    names = resolve_tensors(model, None)
    got = _run(expose_tensors(model, names).model, {"input": x})
    np.testing.assert_allclose(got["logits"], plain, rtol=1e-4, atol=1e-4)
    last = names[-2]  # the last block output before the pooled vector
    ref = _run(_truncated(model, "input", last), {"input": x})[last]
    np.testing.assert_allclose(got[last], ref, rtol=1e-4, atol=1e-4)


def test_unknown_tensor_rejected():
    with pytest.raises(errors.InvalidArgument, match="'nope'"):
        expose_tensors(small_cnn(), ["relu1_out", "nope"])


def test_real_model_exposed_intermediates(real_model_path):
    model = onnx.load(real_model_path("ch_ppocr_mobile_v2.0_cls_infer.onnx"))
    x = np.random.default_rng(5).random((2, 3, 48, 192), dtype=np.float32)
    out_name = model.graph.output[0].name
    plain = _run(model, {"x": x})[out_name]
    names = resolve_tensors(model, None)
    exposed = expose_tensors(model, names, as_float16=True)
    got = _run(exposed.model, {"x": x})
    np.testing.assert_allclose(got[out_name], plain, rtol=1e-4, atol=1e-5)
    for name in (names[0], names[len(names) // 2], names[-1]):
        ref = _run(_truncated(model, "x", name), {"x": x})[name]
        half = got[exposed.outputs[name]]
        assert half.dtype == np.float16
        np.testing.assert_allclose(half.astype(np.float32), ref, rtol=2e-3, atol=1e-3)
