"""A result that could be silently wrong says so: an all-zero gradient and a constant heatmap carry
warnings, and gradients through quantized ops name the straight-through estimator."""

import numpy as np
import onnx
from factory import small_cnn
from onnx import TensorProto, helper, numpy_helper

from inspector import Inspector, InspectorConfig

X = np.random.default_rng(1).random((2, 3, 16, 16)).astype(np.float32)


def _model(nodes, inits) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


W = np.random.default_rng(2).standard_normal((4, 3, 3, 3)).astype(np.float32)
FC = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
TAIL = [helper.make_node("Conv", ["h", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1)]


def test_dead_paths_and_quantized_ops_are_said(tmp_path):
    core = Inspector(InspectorConfig(store_dir=tmp_path / "store", vetting=False))
    dead = _model([helper.make_node("Sub", ["input", "hundred"], ["s"]), helper.make_node("Relu", ["s"], ["h"]),
                   *TAIL], {"hundred": np.array(100, np.float32), "w": W, "fc": FC})
    core.upload([dead.SerializeToString()], name="dead")
    grads = core.gradients("dead", X)
    assert not np.any(grads["input"])
    assert sum("zero everywhere" in w for w in grads.warnings) == 2  # one per image
    exp = core.explain("dead", X, "saliency")
    assert sum("heatmap is constant" in w for w in exp.warnings) == 2
    assert not any("straight-through" in w for w in exp.warnings)

    qdq = _model([helper.make_node("QuantizeLinear", ["input", "scale", "zp"], ["q"]),
                  helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["h"]), *TAIL],
                 {"scale": np.array(0.01, np.float32), "zp": np.array(0, np.uint8), "w": W, "fc": FC})
    core.upload([qdq.SerializeToString()], name="qdq")
    grads = core.gradients("qdq", X)
    assert np.any(grads["input"]) and not any("zero everywhere" in w for w in grads.warnings)
    assert any("straight-through" in w and "QuantizeLinear" in w for w in grads.warnings)
    assert any("straight-through" in w for w in core.explain("qdq", X, "gradcam").warnings)
    assert not any("straight-through" in w for w in core.explain("qdq", X, "scorecam").warnings)

    core.upload([small_cnn(seed=4, size=16).SerializeToString()], name="plain")
    assert core.gradients("plain", X).warnings == [] and core.explain("plain", X).warnings == []


def test_an_integer_input_says_its_gradient_is_straight_through(tmp_path):
    from dtype_models import with_integer_input

    core = Inspector(InspectorConfig(store_dir=tmp_path / "store", vetting=False))
    core.upload([with_integer_input(small_cnn(seed=4, size=16)).SerializeToString()], name="u8")
    x = (X * 255).astype(np.uint8)
    grads = core.gradients("u8", x)
    assert np.any(grads["input"]) and any("straight-through Cast" in w and "uint8" in w for w in grads.warnings)
    assert not any("straight-through" in w for w in core.explain("u8", x, "scorecam").warnings)
