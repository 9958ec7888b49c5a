"""Maximize keeps the model's fixed height/width (an OCR model: height 48, any width): the free
dimension takes the requested or default size, the fixed one is never overridden."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspector import Inspector, InspectorConfig


def ocr_like(height: int) -> onnx.ModelProto:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["conv"], ["relu"], name="relu")],
        "ocr", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, height, "W"])],
        [helper.make_tensor_value_info("relu", TensorProto.FLOAT, [1, 4, height, "W"])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_a_fixed_height_is_kept_and_the_free_width_is_chosen(tmp_path):
    core = Inspector(InspectorConfig(store_dir=tmp_path / "store", vetting=False))
    core.upload([ocr_like(48).SerializeToString()], name="ocr")
    default = core.maximize("ocr", "relu", [0, 1], steps=3)
    assert default.size == [48, 128] and default.inputs.shape == (2, 3, 48, 128)
    sized = core.maximize("ocr", "relu", [2], steps=3, size=[64, 96])
    assert sized.size == [48, 96] and sized.inputs.shape == (1, 3, 48, 96)
    again = core.infer("ocr", sized.inputs)["relu"]  # what the model sees of the result
    np.testing.assert_allclose(again[:, 2].mean(axis=(1, 2)), sized.final_objective, rtol=1e-4)
